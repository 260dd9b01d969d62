"""The local kubelet's pure parts: $(VAR) expansion, back-off, addresses, images, the phase and
conditions, the downward API, the sandbox's root layout and the fallback's path rewriting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kaito.cluster._kubelet._backoff import BackOff
from kaito.cluster._kubelet._container import go_duration
from kaito.cluster._kubelet._env import build_env
from kaito.cluster._kubelet._expand import expand, expand_strict
from kaito.cluster._kubelet._fields import ContainerConfigError, PodFacts, format_map
from kaito.cluster._kubelet._images import ImageError, ImageTable, normalize_image
from kaito.cluster._kubelet._kubelet import _remove_orphans
from kaito.cluster._kubelet._network import AddressPool, AddressPoolExhausted
from kaito.cluster._kubelet._sandbox import (
    BwrapSandbox,
    HostSandbox,
    LaunchSpec,
    Mount,
    _folders_to_split,
    _host_view,
)
from kaito.cluster._kubelet._status import ContainerState, pod_conditions, pod_phase


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)/x", "1/x"),
        ("$(A)$(B)", "12"),
        ("$$(A)", "$(A)"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("a$b", "a$b"),
        ("end$", "end$"),
        ("$(A)$$", "1$"),
    ],
    ids=["ref", "two", "escaped", "undefined", "unclosed", "lone", "trailing", "escape-end"],
)
def test_expansion_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}, {"B": "2"}) == expected


def test_sub_path_expansion_needs_every_variable() -> None:
    assert expand_strict("logs/$(POD)", {"POD": "web-0"}) == "logs/web-0"
    assert expand_strict("logs/$(NOPE)", {}) is None


def test_back_off_doubles_to_the_cap_and_resets_when_stable() -> None:
    backoff = BackOff()
    assert backoff.remaining("k", since=0, now=0) == 0
    assert [backoff.next("k", t) for t in (0, 1, 2, 3, 4, 5, 6)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.remaining("k", since=10, now=15) == 295
    # Stable for more than twice the cap: back to the start.
    assert backoff.remaining("k", since=700, now=700) == 0
    assert backoff.next("k", 700) == 10
    assert [go_duration(s) for s in (10, 80, 160, 300, 3600)] == [
        "10s",
        "1m20s",
        "2m40s",
        "5m0s",
        "1h0m0s",
    ]


def test_address_pool_is_round_robin_and_bounded() -> None:
    pool = AddressPool("127.1.0.0/29")
    first = pool.allocate("a")
    assert first == "127.1.0.2"
    assert pool.allocate("a") == first
    assert [pool.allocate(k) for k in "bcd"] == ["127.1.0.3", "127.1.0.4", "127.1.0.5"]
    pool.release("a")
    # Released addresses are not handed out again before the range wraps.
    assert pool.allocate("e") == "127.1.0.6"
    assert pool.allocate("f") == "127.1.0.2"
    with pytest.raises(
        AddressPoolExhausted, match=r"all 5 addresses of 127\.1\.0\.0/29 are in use"
    ):
        pool.allocate("g")
    with pytest.raises(ValueError, match="not a loopback range"):
        AddressPool("10.0.0.0/24")


def test_image_table_maps_the_projects_images_and_tools() -> None:
    table = ImageTable(python="/usr/bin/python3")
    runtime = table.resolve("myregistry.azurecr.io/kaito/kaito-runtime:0.1.0")
    assert runtime.env["PATH"].startswith("/opt/kaito/bin:/usr/bin:")
    assert runtime.files["/opt/kaito/bin/python"] == "#!/bin/sh\nexec '/usr/bin/python3' \"$@\"\n"
    assert runtime.workdir == "/workspace"
    assert table.resolve("kaito-manager:0.1.0").entrypoint == ("kaito",)
    assert table.resolve("docker.io/library/busybox:1.36").cmd == ("sh",)
    assert table.resolve("curlimages/curl:8.11.0").entrypoint == ("/entrypoint.sh",)
    assert table.resolve("registry.k8s.io/pause:3.10").entrypoint == ("/pause",)
    with pytest.raises(ImageError) as error:
        table.resolve("vllm/vllm-openai:latest")
    assert error.value.reason == "ErrImagePull"
    assert error.value.message.startswith('Failed to pull image "vllm/vllm-openai:latest": ')
    assert normalize_image("busybox") == "docker.io/library/busybox"
    assert normalize_image("localhost:5000/adapters/x:v1") == "localhost:5000/adapters/x"


def test_a_tool_image_whose_program_is_missing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ImageError, match=r"sh, curl are not installed on this machine"):
        ImageTable().resolve("curlimages/curl")


def _state(name: str, state: dict[str, object], **fields: object) -> ContainerState:
    return ContainerState(name=name, image="busybox", state=state, **fields)  # type: ignore[arg-type]


RUNNING = {"running": {"startedAt": "t"}}
DONE = {"terminated": {"exitCode": 0}}
FAILED = {"terminated": {"exitCode": 1}}
WAITING = {"waiting": {"reason": "ContainerCreating"}}


@pytest.mark.parametrize(
    ("policy", "init", "main", "phase"),
    [
        ("Always", [], [WAITING], "Pending"),
        ("Always", [], [RUNNING], "Running"),
        ("Always", [], [FAILED], "Running"),
        ("Never", [], [FAILED], "Failed"),
        ("Never", [], [DONE, DONE], "Succeeded"),
        ("OnFailure", [], [FAILED], "Running"),
        ("Never", [FAILED], [WAITING], "Failed"),
        ("Always", [RUNNING], [WAITING], "Pending"),
        ("Never", [], [RUNNING, DONE], "Running"),
    ],
    ids=["waiting", "running", "always-restarts", "never-fails", "never-succeeds",
         "onfailure-restarts", "init-fails", "init-running", "one-left"],
)  # fmt: skip
def test_phase_follows_the_kubelet(
    policy: str, init: list[dict[str, object]], main: list[dict[str, object]], phase: str
) -> None:
    init_states = [_state(f"i{n}", s) for n, s in enumerate(init)]
    main_states = [_state(f"c{n}", s) for n, s in enumerate(main)]
    assert pod_phase(policy, init_states, main_states) == phase


def test_conditions_name_the_unready_containers() -> None:
    conditions = pod_conditions(
        phase="Running",
        sandbox_ready=True,
        init=[_state("setup", DONE, ready=True)],
        main=[_state("a", RUNNING, ready=True), _state("b", RUNNING)],
        readiness_gates=[],
    )
    assert [c["type"] for c in conditions] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled",
    ]  # fmt: skip
    ready = conditions[2]
    assert ready == {
        "type": "Ready",
        "status": "False",
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [b]",
    }
    gated = pod_conditions(
        phase="Running",
        sandbox_ready=True,
        init=[],
        main=[_state("a", RUNNING, ready=True)],
        readiness_gates=["example.com/lb"],
        conditions=[],
    )
    assert gated[2]["reason"] == "ReadinessGatesNotReady"
    assert gated[3]["status"] == "True"


def test_downward_api_values() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"b": "2", "a": 'x"y'}},
        "spec": {
            "nodeName": "node",
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1500m"}}}],
        },
    }
    facts = PodFacts(pod, "127.1.0.9", "127.2.0.2", {"memory": "2Gi", "cpu": "4"})
    assert facts.field("metadata.labels['b']") == "2"
    assert facts.field("metadata.labels", in_volume=True) == 'a="x\\"y"\nb="2"'
    assert facts.resource({"resource": "limits.cpu"}, "c") == "2"
    assert facts.resource({"resource": "limits.cpu", "divisor": "1m"}, "c") == "1500"
    assert facts.resource({"resource": "limits.memory", "divisor": "1Mi"}, "c") == "2048"
    with pytest.raises(ContainerConfigError, match="unsupported fieldPath"):
        facts.field("spec.containers")
    assert format_map({}) == ""


@pytest.mark.anyio
async def test_env_reports_missing_keys_in_the_kubelets_words() -> None:
    facts = PodFacts({"metadata": {"namespace": "n"}}, "", "")
    objects = {("ConfigMap", "n", "cm"): {"data": {"a": "1"}}}

    async def lookup(kind: str, namespace: str, name: str) -> dict[str, object] | None:
        return objects.get((kind, namespace, name))  # type: ignore[return-value]

    container = {
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b"}}}]
    }
    with pytest.raises(ContainerConfigError, match="couldn't find key b in ConfigMap n/cm"):
        await build_env(container, facts, lookup)
    container = {"envFrom": [{"secretRef": {"name": "s"}}]}
    with pytest.raises(ContainerConfigError, match='secret "s" not found'):
        await build_env(container, facts, lookup)


def _spec(tmp_path: Path, *mounts: Mount, workdir: str = "/") -> LaunchSpec:
    return LaunchSpec(
        argv=("sh",),
        env={"PATH": "/opt/kaito/bin:/usr/bin", "DATA": "--dir=/mnt/data/x:/mnt/database"},
        workdir=workdir,
        mounts=mounts,
        scratch=tmp_path / "scratch",
        hostname="h",
    )


def test_host_sandbox_rewrites_known_paths_only(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        Mount("/mnt/data", tmp_path / "vol"),
        Mount("/opt/kaito/bin", tmp_path / "bin"),
        workdir="/workspace",
    )
    launch = HostSandbox(setpriv=None).launch(spec)
    assert launch.env["PATH"] == f"{tmp_path}/bin:/usr/bin"
    # /mnt/database is another path: only whole path components are rewritten.
    assert launch.env["DATA"] == f"--dir={tmp_path}/vol/x:/mnt/database"
    assert launch.cwd == str(tmp_path / "scratch" / "workdir")
    assert launch.env["TMPDIR"] == str(tmp_path / "scratch" / "tmp")


def test_bwrap_layout_splits_only_the_folders_that_need_new_mount_points(tmp_path: Path) -> None:
    assert _folders_to_split(["/mnt/data", "/tmp/x", "/workspace/weights", "/etc/hosts"]) == {
        "/mnt"
    }
    spec = _spec(
        tmp_path, Mount("/mnt/data", tmp_path / "vol", read_only=True), workdir="/workspace"
    )
    argv = BwrapSandbox("bwrap", nsenter="nsenter", setpriv=None).launch(spec).argv
    text = " ".join(argv)
    assert "--ro-bind /usr /usr" in text
    assert "--dir /mnt" in text
    assert f"--ro-bind {tmp_path}/vol /mnt/data" in text
    assert "--dir /workspace --chdir /workspace -- sh" in text
    assert "--unshare-pid" in argv
    assert "--die-with-parent" in argv


def test_mount_points_behind_host_symlinks_follow_them() -> None:
    if not Path("/var/run").is_symlink():
        pytest.skip("this host has no /var/run symbolic link")
    target = Path("/var/run").resolve()
    assert _host_view("/var/run/secrets/kubernetes.io") == f"{target}/secrets/kubernetes.io"
    assert _folders_to_split(["/var/run/secrets/kubernetes.io"]) == {str(target)}
    assert _host_view("/no/such/path") == "/no/such/path"


def test_folders_of_a_killed_kubelet_are_removed_by_the_next(tmp_path: Path) -> None:
    dead = tmp_path / "kaito-kubelet-999999999-abc"
    (dead / "pods").mkdir(parents=True)
    live = tmp_path / f"kaito-kubelet-{os.getpid()}-abc"
    live.mkdir()
    other = tmp_path / "kaito-kubelet-notmine"
    other.mkdir()
    _remove_orphans([tmp_path, tmp_path / "missing"])
    assert not dead.exists()
    assert live.exists()
    assert other.exists()
