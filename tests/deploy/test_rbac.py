"""The manager under its own ServiceAccount with RBAC enforced, installed from deploy/ with
``kubectl apply -k``: the guide's Workspaces reach ready, and ``kubectl auth can-i --list`` for the
ServiceAccount shows exactly the permissions the manager used (derived from the API server's
audit of its requests): every granted verb was needed, nothing broader is granted, and what is
granted in one namespace only (the Lease, the certificate's Secret, Karpenter's Events) was only
ever asked for there."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Final

import attrs
import pytest
import yaml

from kaito.cluster import AuditEvent
from tests.deploy.conftest import RELEASE_NAMESPACE, REPO, SERVICE_ACCOUNT
from tests.deploy.installed import Installation, eventually, installation, summarize

pytestmark = pytest.mark.kubectl

EXAMPLES = REPO / "examples"
#: Users' Workspaces live in any namespace: two stand for all of them (none in ``default``, where
#: only Karpenter's Events are read).
TEAM_A, TEAM_B = "team-a", "team-b"
#: Granted to every authenticated user by the bootstrap policy, not by deploy/.
BASELINE_RESOURCES = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}
#: An atom of permission: (API group, resource[/subresource], verb).
Atom = tuple[str, str, str]


@attrs.frozen
class Run:
    """An installation after the guide's story ran, with the manager's audited requests."""

    kaito: Installation
    events: list[AuditEvent]
    exit_code: int
    ready: dict[str, bool]
    #: Owned objects as the manager created them (seen while the Workspaces were ready).
    created: dict[tuple[str, str], list[dict[str, Any]]]


def _example(rel: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / rel).read_text())
    for key, value in changes.items():
        doc["metadata"][key] = value
    return doc


def _byo(doc: dict[str, Any]) -> dict[str, Any]:
    """The guide's Workspace for bring-your-own nodes (v1beta1, no instanceType)."""
    doc["apiVersion"] = "kaito.sh/v1beta1"
    doc["resource"].pop("instanceType", None)
    return doc


def _wait_ready(kaito: Installation, names: dict[str, str]) -> dict[str, bool]:
    for name, namespace in names.items():
        kaito.kubectl("wait", "--for=condition=WorkspaceReady", f"workspace/{name}", "-n",
                      namespace, "--timeout=60s")  # fmt: skip
    return dict.fromkeys(names, True)


def _repair_drift(kaito: Installation) -> None:
    """Hand edits of what the manager owns are patched back (its ``patch`` verbs); a tuning Job
    is replaced rather than patched, so Jobs need no ``patch``."""
    ws = "workspace-phi-3-mini"
    kaito.kubectl("patch", "configmap", f"{ws}-inference-params", "-n", TEAM_A, "--type=merge",
                  "-p", '{"data":{"inference_config.yaml":"edited: by hand"}}')  # fmt: skip
    kaito.kubectl("scale", "statefulset", ws, "-n", TEAM_A, "--replicas=3")
    kaito.kubectl("label", "service", ws, "-n", TEAM_A, "--overwrite",
                  "kaito.sh/workspace=edited")  # fmt: skip

    def repaired() -> bool:
        cm = kaito.get("v1", "ConfigMap", f"{ws}-inference-params", TEAM_A)
        sts = kaito.get("apps/v1", "StatefulSet", ws, TEAM_A)
        svc = kaito.get("v1", "Service", ws, TEAM_A)
        return (
            "edited" not in cm["data"]["inference_config.yaml"]
            and sts["spec"]["replicas"] == 1
            and svc["metadata"]["labels"]["kaito.sh/workspace"] == ws
        )

    eventually(repaired, what="the manager to patch back its owned objects")


def _run_the_guide(kaito: Installation, *, byo: bool) -> Run:
    for namespace in (TEAM_A, TEAM_B):
        kaito.kubectl("create", "namespace", namespace)
    kaito.kubectl("create", "secret", "docker-registry", "acr-registry-secret", "-n", TEAM_A,
                  "--docker-server=myregistry.azurecr.io", "--docker-username=robot",
                  "--docker-password=not-a-real-password")  # fmt: skip
    # A Workspace may name its own inference parameters (read by name in its namespace).
    kaito.kubectl("create", "configmap", "my-inference-params", "-n", TEAM_B,
                  "--from-literal=inference_config.yaml=vllm:\n  max-model-len: 4096\n")  # fmt: skip
    adapters = _example("inference/kaito_workspace_phi_3_with_adapters.yaml", namespace=TEAM_B)
    adapters["inference"]["config"] = "my-inference-params"
    docs = [
        _example("inference/kaito_workspace_phi_3.yaml", namespace=TEAM_A),
        adapters,
        _example("fine-tuning/kaito_workspace_tuning_phi_3.yaml", namespace=TEAM_A),
    ]
    if byo:
        docs = [_byo(d) for d in docs]
        for i, doc in enumerate(docs):
            kaito.add_gpu_node(f"gpu-{i}", dict(doc["resource"]["labelSelector"]["matchLabels"]))
    pod = kaito.pods()[0]
    with kaito.audit() as events:
        manager = kaito.start_manager(pod)
        kaito.apply(*docs)
        ready = _wait_ready(
            kaito, {d["metadata"]["name"]: d["metadata"]["namespace"] for d in docs}
        )
        created = {
            kind: kaito.list(*kind, label_selector="kaito.sh/workspace")
            for kind in (("apps/v1", "StatefulSet"), ("batch/v1", "Job"), ("v1", "Service"))
        }
        _repair_drift(kaito)
        if kaito.karpenter is not None:
            # Karpenter finds no capacity: the manager reads its InsufficientCapacityError Event.
            kaito.karpenter.faults.add("capacity", workspace="capacity-check", times=1)
            kaito.apply(_example("inference/kaito_workspace_phi_3.yaml", name="capacity-check",
                                 namespace=TEAM_B))  # fmt: skip

            def reported() -> bool:
                ready = kaito.conditions("capacity-check", TEAM_B).get("ResourceReady", {})
                return ready.get("reason") == "InsufficientCapacity"

            eventually(reported, what="InsufficientCapacity on capacity-check")
        for namespace in (TEAM_A, TEAM_B):
            kaito.kubectl("delete", "workspace", "--all", "-n", namespace, "--wait",
                          "--timeout=60s")  # fmt: skip
        code = manager.stop()
    return Run(kaito, list(events), code, ready, created)


@pytest.fixture(scope="module")
def karpenter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with installation("karpenter", tmp_path_factory.mktemp("karpenter")) as kaito:
        yield _run_the_guide(kaito, byo=False)


@pytest.fixture(scope="module")
def byo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with installation("default", tmp_path_factory.mktemp("byo")) as kaito:
        yield _run_the_guide(kaito, byo=True)


@pytest.fixture(params=["byo", "karpenter"])
def run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_the_guides_workspaces_reach_ready_under_the_service_account(run: Run) -> None:
    assert run.ready == {
        "workspace-phi-3-mini": True,
        "workspace-phi-3-mini-adapter": True,
        "workspace-tuning-phi-3": True,
    }
    assert run.exit_code == 0
    assert {e.user for e in run.events} == {SERVICE_ACCOUNT}
    denied = [e for e in run.events if e.code == 403]
    assert denied == [], summarize(denied)
    pods = {e.extra.get("authentication.kubernetes.io/pod-name") for e in run.events}
    assert len(pods) == 1 and None not in pods  # the token its pod mounts


# -- what was used, what is granted ---------------------------------------------------------


def _atom(event: AuditEvent) -> Atom:
    resource = f"{event.resource}/{event.subresource}" if event.subresource else event.resource
    return (event.api_group, resource, event.verb)


_CLUSTER_SCOPED = {"nodes", "nodeclaims", "validatingwebhookconfigurations",
                   "mutatingwebhookconfigurations"}  # fmt: skip
_NAMED = {"get", "update", "patch", "delete"}


@attrs.frozen
class Needs:
    """Permissions derived from the audit: cluster-wide ones, per-namespace ones, and the names
    each verb was used on (when every use named an object)."""

    cluster: frozenset[Atom]
    namespaced: dict[str, frozenset[Atom]]
    names: dict[Atom, frozenset[str]]


#: What the code needs but a run of the guide's Workspaces never does, each with the test that
#: exercises it (ControllerRevisions are garbage-collected with their Workspace, never deleted
#: by the manager unless a Workspace passes ten revisions).
NOT_EXERCISED_HERE: Final = {
    (
        "apps",
        "controllerrevisions",
        "get",
    ): "tests/controllers/test_revisions.py: a stale cache reads it back",
    (
        "apps",
        "controllerrevisions",
        "delete",
    ): "tests/controllers/test_revisions.py: trimmed past ten",
}


def _needs(run: Run) -> Needs:
    """Cluster-wide: what was used on cluster-scoped objects, across namespaces, or in a
    Workspace's namespace (they stand for any namespace); per namespace: what was used only in
    the release namespace or only in ``default``."""
    used = [e for e in run.events if e.code != 403]
    where: dict[Atom, set[str]] = defaultdict(set)
    names: dict[Atom, set[str]] = defaultdict(set)
    for event in used:
        atom = _atom(event)
        cluster_wide = event.resource in _CLUSTER_SCOPED or not event.namespace
        where[atom].add("" if cluster_wide else event.namespace)
        names[atom].add(event.name if event.verb in _NAMED else "")
    # OwnerReferencesPermissionEnforcement asks it of every owned object the manager creates
    # with blockOwnerDeletion; the audit shows the creates, not the check.
    blocking = [
        ref for kind in (("apps/v1", "StatefulSet"), ("batch/v1", "Job"), ("v1", "Service"))
        for obj in run.created[kind] for ref in obj["metadata"].get("ownerReferences") or []
        if ref.get("kind") == "Workspace" and ref.get("blockOwnerDeletion")
    ]  # fmt: skip
    if blocking:
        where[("kaito.sh", "workspaces/finalizers", "update")].add(TEAM_A)
    for atom in NOT_EXERCISED_HERE:
        where[atom].add(TEAM_A)
    cluster = frozenset(
        atom for atom, spaces in where.items()
        if spaces & {"", TEAM_A, TEAM_B} or len(spaces) > 1
    )  # fmt: skip
    namespaced: dict[str, set[Atom]] = defaultdict(set)
    for atom, spaces in where.items():
        if atom not in cluster:
            (namespace,) = spaces
            namespaced[namespace].add(atom)
    return Needs(
        cluster,
        {k: frozenset(v) for k, v in namespaced.items()},
        {a: frozenset(n) for a, n in names.items() if "" not in n},
    )


_TOKEN = re.compile(r"\[[^\]]*\]|\S+")


def _can_i_list(kaito: Installation, namespace: str) -> dict[Atom, frozenset[str]]:
    """``kubectl auth can-i --list`` as the manager in ``namespace``: atoms and resource names
    (empty: any name), without the bootstrap rules every authenticated user has."""
    listing = kaito.kubectl("auth", "can-i", "--list", f"--as={SERVICE_ACCOUNT}",
                            "-n", namespace).stdout  # fmt: skip
    granted: dict[Atom, set[str]] = defaultdict(set)
    for line in listing.splitlines()[1:]:
        tokens = _TOKEN.findall(line)
        if not tokens or tokens[0].startswith("["):
            continue  # non-resource URLs (/api, /version...): discovery, for everyone
        resource, _urls, names, verbs = tokens
        if resource in BASELINE_RESOURCES:
            continue
        qualified, _, subresource = resource.partition("/")
        plural, _, group = qualified.partition(".")
        if subresource:
            plural = f"{plural}/{subresource}"
        for verb in verbs.strip("[]").split():
            granted[(group, plural, verb)] |= set(names.strip("[]").split())
    return {a: frozenset(n) for a, n in granted.items()}


def test_can_i_list_shows_exactly_the_permissions_the_manager_used(run: Run) -> None:
    needs = _needs(run)
    elsewhere = _can_i_list(run.kaito, "nowhere-in-particular")  # cluster-wide grants only
    message = "audit of the manager's requests:\n" + summarize(run.events)
    assert set(elsewhere) == set(needs.cluster), message
    for namespace in (RELEASE_NAMESPACE, "default"):
        here = _can_i_list(run.kaito, namespace)
        only_here = set(here) - set(elsewhere)
        assert only_here == set(needs.namespaced.get(namespace, ())), (namespace, message)
    for namespace in needs.namespaced:
        assert namespace in (RELEASE_NAMESPACE, "default"), namespace
    # Resource names: a grant restricted to names covers exactly the names the manager used.
    granted = {**elsewhere, **_can_i_list(run.kaito, RELEASE_NAMESPACE)}
    restricted = {a: n for a, n in granted.items() if n}
    assert restricted == {a: needs.names[a] for a in restricted}
    # The manager's own objects (in its namespace, its webhook configurations) are named.
    own = set(needs.namespaced.get(RELEASE_NAMESPACE, ())) | {
        a for a in needs.names if a[1].endswith("webhookconfigurations")
    }
    for atom in own & set(needs.names):
        assert atom in restricted, f"{atom} is only used on {sorted(needs.names[atom])}: name them"
