"""Each rule in deploy/ is needed: install the Karpenter overlay (the base's rules and its own)
with one rule removed, run the manager under its ServiceAccount, and a named behaviour fails
(with the API server's 403 for a request the rule covered)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from kaito.cluster import AuditEvent, StatusError
from kaito.engine import ApiError
from tests.deploy.conftest import REPO, documents
from tests.deploy.installed import InProcessManager, Installation, eventually, installation

OVERLAY = "karpenter"
NAMESPACE = "team-a"
WORKSPACE = "workspace-phi-3-mini"
EXAMPLE = REPO / "examples" / "inference" / "kaito_workspace_phi_3.yaml"


def _rules() -> list[tuple[str, str, int, dict[str, Any]]]:
    """(kind, name, index, rule) of every rule the overlay's Roles and ClusterRoles grant."""
    return [
        (doc["kind"], doc["metadata"]["name"], i, rule)
        for doc in documents(OVERLAY)
        if doc["kind"] in ("Role", "ClusterRole")
        for i, rule in enumerate(doc["rules"])
    ]


def _rule_id(kind: str, name: str, rule: dict[str, Any]) -> str:
    names = f"/{','.join(rule['resourceNames'])}" if rule.get("resourceNames") else ""
    return f"{kind}/{name}:{','.join(rule['resources'])}{names}:{','.join(rule['verbs'])}"


@attrs.frozen
class Outcome:
    """What the manager did with the rule missing."""

    kaito: Installation
    manager: InProcessManager | None
    start_error: ApiError | None
    denied: list[AuditEvent]
    #: The API server's refusal of the Workspace itself (its admission webhook failed).
    create_error: StatusError | None


@attrs.frozen
class Behaviour:
    """A named behaviour, the denial that breaks it, and how its failure shows."""

    name: str
    denied: Callable[[AuditEvent], bool]
    broken: Callable[[Outcome], bool]
    capacity_fault: bool = False


def _denial(verbs: set[str], resources: set[str]) -> Callable[[AuditEvent], bool]:
    def matches(e: AuditEvent) -> bool:
        resource = f"{e.resource}/{e.subresource}" if e.subresource else e.resource
        return e.code == 403 and e.verb in verbs and resource in resources

    return matches


def _not_ready(o: Outcome) -> bool:
    return o.manager is not None and not o.manager.ready


def _start_failed(word: str) -> Callable[[Outcome], bool]:
    def failed(o: Outcome) -> bool:
        return (
            o.start_error is not None and o.start_error.status == 403 and word in str(o.start_error)
        )

    return failed


def _refused_by_the_webhook(word: str) -> Callable[[Outcome], bool]:
    def refused(o: Outcome) -> bool:
        error = o.create_error
        return (
            error is not None
            and "kaito webhook error: 403 Forbidden" in error.message
            and (word in error.message)
        )

    return refused


def _no_finalizer(o: Outcome) -> bool:
    ws = o.kaito.get("kaito.sh/v1beta1", "Workspace", WORKSPACE, NAMESPACE)
    return not (ws["metadata"].get("finalizers") or [])


def _no_conditions(o: Outcome) -> bool:
    ws = o.kaito.get("kaito.sh/v1beta1", "Workspace", WORKSPACE, NAMESPACE)
    return not (ws.get("status") or {}).get("conditions")


def _no_statefulset(o: Outcome) -> bool:
    return o.kaito.get("apps/v1", "StatefulSet", WORKSPACE, NAMESPACE) is None


def _no_manager_events(o: Outcome) -> bool:
    events = o.kaito.list("v1", "Event", NAMESPACE)
    return not [e for e in events if (e.get("source") or {}).get("component") == "kaito-workspace"
                or e.get("reportingComponent") == "kaito-workspace"]  # fmt: skip


def _no_nodeclaim(o: Outcome) -> bool:
    return o.kaito.list("karpenter.sh/v1", "NodeClaim") == []


def _capacity_not_explained(o: Outcome) -> bool:
    ready = o.kaito.conditions(WORKSPACE, NAMESPACE).get("ResourceReady", {})
    return "InsufficientCapacityError" not in ready.get("message", "")


#: The behaviour each rule enables, keyed by its resources and verbs.
BEHAVIOURS: dict[tuple[str, str], Behaviour] = {
    ("workspaces", "get,list,watch,patch"): Behaviour(
        "the manager watches Workspaces (ready) and adds their finalizer",
        _denial({"list", "watch"}, {"workspaces"}), _not_ready),
    ("workspaces/status", "patch"): Behaviour(
        "the Workspace's conditions are written",
        _denial({"patch"}, {"workspaces/status"}), _no_conditions),
    ("workspaces/finalizers", "update"): Behaviour(
        "owned objects block their Workspace's deletion (OwnerReferencesPermissionEnforcement)",
        _denial({"create"}, {"controllerrevisions", "services", "configmaps", "statefulsets"}),
        _no_statefulset),
    ("configmaps", "get,list,watch,create,patch,delete"): Behaviour(
        "the manager caches ConfigMaps (ready), and its webhook reads a Workspace's",
        _denial({"list", "watch"}, {"configmaps"}),
        lambda o: _not_ready(o) and _refused_by_the_webhook("configmaps")(o)),
    ("services", "list,watch,create,patch,delete"): Behaviour(
        "the manager caches Services (ready)", _denial({"list", "watch"}, {"services"}),
        _not_ready),
    ("statefulsets", "list,watch,create,patch,delete"): Behaviour(
        "the manager caches StatefulSets (ready)", _denial({"list", "watch"}, {"statefulsets"}),
        _not_ready),
    ("controllerrevisions", "get,list,watch,create,delete"): Behaviour(
        "the manager caches ControllerRevisions (ready)",
        _denial({"list", "watch"}, {"controllerrevisions"}), _not_ready),
    ("jobs", "list,watch,create,delete"): Behaviour(
        "the manager caches Jobs (ready)", _denial({"list", "watch"}, {"jobs"}), _not_ready),
    ("nodes,pods", "list,watch"): Behaviour(
        "the manager caches Nodes and Pods (ready)", _denial({"list", "watch"}, {"nodes", "pods"}),
        _not_ready),
    ("events", "create"): Behaviour(
        "kubectl describe workspace tells the story in Events",
        _denial({"create"}, {"events"}), _no_manager_events),
    ("validatingwebhookconfigurations", "get,update"): Behaviour(
        "the validating webhook's caBundle is kept", lambda e: False,
        _start_failed("validatingwebhookconfigurations")),
    ("mutatingwebhookconfigurations", "get,update"): Behaviour(
        "the mutating webhook's caBundle is kept", lambda e: False,
        _start_failed("mutatingwebhookconfigurations")),
    ("leases", "create"): Behaviour(
        "a replica is elected leader and reconciles", _denial({"create"}, {"leases"}),
        _no_finalizer),
    ("leases", "get,update"): Behaviour(
        "a replica is elected leader and reconciles", _denial({"get", "update"}, {"leases"}),
        _no_finalizer),
    ("secrets", "get,update"): Behaviour(
        "the webhook certificate is kept in its Secret", lambda e: False,
        _start_failed("secrets")),
    ("nodeclaims", "list,create,delete"): Behaviour(
        "GPU nodes are claimed from Karpenter", _denial({"list", "create"}, {"nodeclaims"}),
        _no_nodeclaim),
    ("events", "list"): Behaviour(
        "Karpenter's InsufficientCapacityError reaches the Workspace's status",
        _denial({"list"}, {"events"}), _capacity_not_explained, capacity_fault=True),
}  # fmt: skip

RULES = _rules()


def test_every_rule_has_a_named_behaviour() -> None:
    keys = {(",".join(r["resources"]), ",".join(r["verbs"])) for _, _, _, r in RULES}
    assert keys == set(BEHAVIOURS)


@pytest.mark.kubectl
@pytest.mark.parametrize(
    ("kind", "name", "index", "rule"), RULES, ids=[_rule_id(k, n, r) for k, n, _, r in RULES]
)
def test_removing_the_rule_breaks_its_behaviour(
    kind: str, name: str, index: int, rule: dict[str, Any], tmp_path: Path
) -> None:
    behaviour = BEHAVIOURS[(",".join(rule["resources"]), ",".join(rule["verbs"]))]

    def without_the_rule(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        docs = copy.deepcopy(docs)
        (role,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
        del role["rules"][index]
        return docs

    with installation(OVERLAY, tmp_path, rbac=without_the_rule) as kaito:
        kaito.kubectl("create", "namespace", NAMESPACE)
        if behaviour.capacity_fault:
            assert kaito.karpenter is not None
            kaito.karpenter.faults.add("capacity", workspace=WORKSPACE)
        pod = kaito.pods()[0]
        manager: InProcessManager | None = None
        start_error: ApiError | None = None
        with kaito.audit() as events:
            try:
                manager = kaito.run_in_process(pod)
            except ApiError as err:
                start_error = err
            try:
                create_error = None
                if manager is not None:
                    ws = yaml.safe_load(EXAMPLE.read_text())
                    ws["metadata"]["namespace"] = NAMESPACE
                    try:
                        kaito.call(kaito.cluster.cluster.client.create, ws)
                    except StatusError as err:
                        create_error = err
                    eventually(lambda: [e for e in events if behaviour.denied(e)],
                               what=f"a 403 for {behaviour.name}")  # fmt: skip
                outcome = Outcome(kaito, manager, start_error,
                                  [e for e in events if behaviour.denied(e)], create_error)  # fmt: skip
                assert behaviour.broken(outcome), behaviour.name
            finally:
                if manager is not None:
                    manager.stop()
