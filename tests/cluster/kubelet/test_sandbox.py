"""Each Pod sees its own filesystem: absolute paths such as /mnt/data exist for that Pod only
(bubblewrap); where that is not possible, the known paths are rewritten to host folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kaito.cluster import LocalKubelet, start_cluster
from tests.cluster.kubelet._helpers import Local, StepClock, exists, phase, pod, sh

pytestmark = pytest.mark.anyio

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed"
)


def _reader(name: str, text: str) -> dict[str, object]:
    return pod(
        name,
        sh(
            "cat /mnt/data/value; hostname; cat /proc/1/comm; "
            "touch /usr/mine 2>/dev/null || echo host read-only; ls -A /tmp; echo end",
            volumeMounts=[{"name": "data", "mountPath": "/mnt/data"}],
        ),
        initContainers=[
            sh(
                f"echo {text} > /mnt/data/value; touch /tmp/init-only",
                name="write",
                volumeMounts=[{"name": "data", "mountPath": "/mnt/data"}],
            )
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
        restartPolicy="Never",
    )


@needs_bwrap
async def test_each_pod_has_its_own_mount_namespace(local: Local) -> None:
    assert local.kubelet.sandbox.name == "bwrap"
    await local.create(_reader("one", "first"))
    await local.create(_reader("two", "second"))
    for name in ("one", "two"):
        await local.wait(name, lambda p: phase(p) == "Succeeded")
    one = (await local.logs("one")).decode().splitlines()
    two = (await local.logs("two")).decode().splitlines()
    # Its own hostname, PID namespace (bubblewrap is PID 1), read-only host folders and /tmp.
    assert one == ["first", "one", "bwrap", "host read-only", "end"]
    assert two == ["second", "two", "bwrap", "host read-only", "end"]
    # The path never existed on the host, and nothing was written to the host's folders.
    assert not exists("/mnt/data")
    assert not exists("/usr/mine")


async def test_without_a_sandbox_the_known_paths_are_rewritten(host_local: Local) -> None:
    await host_local.create(
        pod(
            "rewritten",
            sh(
                "cat /mnt/data/value; echo $DATA_DIR; pwd",
                env=[{"name": "DATA_DIR", "value": "/mnt/data/models"}],
                workingDir="/mnt/data",
                volumeMounts=[{"name": "data", "mountPath": "/mnt/data"}],
            ),
            initContainers=[
                sh(
                    "echo rewritten > /mnt/data/value",
                    name="write",
                    volumeMounts=[{"name": "data", "mountPath": "/mnt/data"}],
                )
            ],
            volumes=[{"name": "data", "emptyDir": {}}],
            restartPolicy="Never",
        )
    )
    done = await host_local.wait("rewritten", lambda p: phase(p) == "Succeeded")
    lines = (await host_local.logs("rewritten")).decode().splitlines()
    uid = done["metadata"]["uid"]
    volume = host_local.tmp / "kubelet" / "pods" / uid / "volumes" / "data"
    assert lines == ["rewritten", f"{volume}/models", str(volume)]
    assert not exists("/mnt/data")


async def test_the_fallback_says_what_it_cannot_do(tmp_path: Path) -> None:
    clock = StepClock()
    clock.release()
    with capture_logs() as logs:
        async with (
            LocalKubelet(root=tmp_path / "k", clock=clock, sandbox="host") as kubelet,
            start_cluster(kubelet=kubelet),
        ):
            pass
    warning = next(e for e in logs if e["event"] == "kubelet_sandbox_unavailable")
    assert warning["log_level"] == "warning"
    assert warning["reason"] == "sandbox=host was asked for"
    assert "rewritten to host folders" in warning["fallback"]
    assert (
        "readOnly mounts, a private /tmp, hostname and PID namespace are not provided"
        in (warning["fallback"])
    )


async def test_insisting_on_bubblewrap_where_it_is_missing_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="bwrap is not installed"):
        async with LocalKubelet(root=tmp_path / "k", sandbox="bwrap"):
            pass
