"""The RBAC authoriser: a table of rules and requests, bindings of every subject kind, aggregation,
the ``system:masters`` bypass and kube-apiserver's wording."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.cluster import Cluster, start_cluster
from kaito.cluster._auth import Attributes, PolicyRule, UserInfo, forbidden_message, rule_allows

pytestmark = pytest.mark.anyio
SA = UserInfo(
    "system:serviceaccount:team:robot",
    groups=("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"),
)
JANE = UserInfo("jane", groups=("devs", "system:authenticated"))


def _rule(**fields: Any) -> PolicyRule:
    rule = PolicyRule.from_json(fields)
    assert rule is not None
    return rule


def _request(verb: str, resource: str = "", **fields: Any) -> Attributes:
    resource, _, subresource = resource.partition("/")
    return Attributes(JANE, verb, resource=resource, subresource=subresource, **fields)


RULE_CASES = [
    # (rule, request, allowed)
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, _request("get", "pods"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, _request("list", "pods"), False),
    ({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}, _request("delete", "pods"), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, _request("get", "pods"), False),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["deployments"]}, _request("get", "deployments", api_group="apps"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, _request("get", "pods/log"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, _request("get", "pods/log"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, _request("get", "pods"), False),
    ({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}, _request("update", "deployments/scale", api_group="apps"), True),
    ({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}, _request("update", "deployments", api_group="apps"), False),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}, _request("get", "secrets/status"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}, _request("get", "configmaps", name="a"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}, _request("get", "configmaps", name="b"), False),
    ({"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}, _request("list", "configmaps"), False),
    ({"verbs": ["create"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}, _request("create", "configmaps"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, Attributes(JANE, "get", resource_request=False, path="/healthz"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, Attributes(JANE, "get", resource_request=False, path="/healthz/etcd"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, Attributes(JANE, "get", resource_request=False, path="/apis/apps/v1"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, Attributes(JANE, "get", resource_request=False, path="/metrics"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}, Attributes(JANE, "post", resource_request=False, path="/metrics"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, _request("get", "pods"), False),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}, Attributes(JANE, "get", resource_request=False, path="/api"), False),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "request_", "allowed"), RULE_CASES)
def test_rule_matching(rule: dict[str, Any], request_: Attributes, allowed: bool) -> None:
    assert rule_allows(request_, _rule(**rule)) is allowed


def test_forbidden_wording() -> None:
    assert forbidden_message(Attributes(SA, "get", resource="pods", namespace="default")) == (
        'User "system:serviceaccount:team:robot" cannot get resource "pods" in API group "" in '
        'the namespace "default"'
    )
    assert forbidden_message(
        Attributes(SA, "list", api_group="apps", resource="deployments", subresource="scale")
    ) == (
        'User "system:serviceaccount:team:robot" cannot list resource "deployments/scale" in '
        'API group "apps" at the cluster scope'
    )
    assert forbidden_message(Attributes(SA, "get", resource_request=False, path="/metrics")) == (
        'User "system:serviceaccount:team:robot" cannot get path "/metrics"'
    )


def _binding(kind: str, name: str, role_kind: str, role: str, *subjects: dict[str, str],
             namespace: str = "") -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": list(subjects),
    }
    return obj


def _role(kind: str, name: str, *rules: dict[str, Any], namespace: str = "",
          labels: dict[str, str] | None = None, aggregate: dict[str, str] | None = None
          ) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": labels or {},
                     **({"namespace": namespace} if namespace else {})},
        "rules": list(rules),
    }  # fmt: skip
    if aggregate is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": aggregate}]}
    return obj


READ_PODS = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
WRITE_LEASES = {"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}


@pytest.fixture
async def rbac() -> Any:
    async with start_cluster(authorization="RBAC", controllers=False) as cluster:
        for namespace in ("team", "other"):
            await cluster.create_namespace(namespace)
        for obj in (
            _role("Role", "pod-reader", READ_PODS, namespace="team"),
            _binding("RoleBinding", "robot-reads", "Role", "pod-reader",
                     {"kind": "ServiceAccount", "name": "robot"}, namespace="team"),
            _role("ClusterRole", "leases", WRITE_LEASES),
            _binding("RoleBinding", "devs-leases", "ClusterRole", "leases",
                     {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"},
                     namespace="other"),
            _role("ClusterRole", "kaito-aggregate", aggregate={"kaito.sh/aggregate": "true"}),
            _role("ClusterRole", "kaito-part", {"verbs": ["get"], "apiGroups": ["kaito.sh"],
                  "resources": ["workspaces"]}, labels={"kaito.sh/aggregate": "true"}),
            _binding("ClusterRoleBinding", "jane-aggregate", "ClusterRole", "kaito-aggregate",
                     {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}),
            _binding("ClusterRoleBinding", "broken", "ClusterRole", "missing",
                     {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}),
        ):  # fmt: skip
            await cluster.client.create(obj)
        yield cluster


async def _decide(cluster: Cluster, user: UserInfo, verb: str, resource: str,
                  **fields: Any) -> tuple[bool, str]:  # fmt: skip
    decision = await cluster.access.authorizer.authorize(
        Attributes(user, verb, resource=resource, **fields)
    )
    return decision.allowed, decision.reason


async def test_bindings_scope_rules_to_their_subjects_and_namespaces(rbac: Cluster) -> None:
    assert await _decide(rbac, SA, "list", "pods", namespace="team") == (
        True,
        'RBAC: allowed by RoleBinding "robot-reads/team" of Role "pod-reader" to ServiceAccount '
        '"robot/team"',
    )
    assert (await _decide(rbac, SA, "list", "pods", namespace="other"))[0] is False
    assert (await _decide(rbac, SA, "list", "pods"))[0] is False  # cluster scope
    assert (await _decide(rbac, SA, "delete", "pods", namespace="team"))[0] is False
    other_sa = UserInfo("system:serviceaccount:other:robot", groups=SA.groups)
    assert (await _decide(rbac, other_sa, "list", "pods", namespace="team"))[0] is False
    leases = {"api_group": "coordination.k8s.io"}
    assert await _decide(rbac, JANE, "update", "leases", namespace="other", **leases) == (
        True,
        'RBAC: allowed by RoleBinding "devs-leases/other" of ClusterRole "leases" to Group "devs"',
    )
    assert (await _decide(rbac, JANE, "update", "leases", namespace="team", **leases))[0] is False


async def test_aggregated_cluster_roles_and_missing_roles(rbac: Cluster) -> None:
    allowed = await _decide(rbac, JANE, "get", "workspaces", api_group="kaito.sh", namespace="x")
    assert allowed == (
        True,
        'RBAC: allowed by ClusterRoleBinding "jane-aggregate" of ClusterRole "kaito-aggregate" '
        'to User "jane"',
    )
    denied = await _decide(rbac, JANE, "delete", "workspaces", api_group="kaito.sh")
    assert denied == (
        False,
        'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found',
    )


async def test_masters_and_bootstrap_roles(rbac: Cluster) -> None:
    admin = UserInfo("root", groups=("system:masters",))
    assert (await _decide(rbac, admin, "delete", "nodes"))[0] is True
    anyone = UserInfo("someone", groups=("system:authenticated",))
    review = {"api_group": "authorization.k8s.io"}
    assert (await _decide(rbac, anyone, "create", "selfsubjectaccessreviews", **review))[0]
    discovery = Attributes(anyone, "get", resource_request=False, path="/apis/apps/v1")
    assert (await rbac.access.authorizer.authorize(discovery)).allowed
    assert (await _decide(rbac, anyone, "get", "pods", namespace="team"))[0] is False
    editor = UserInfo("ed", groups=("system:authenticated",))
    await rbac.client.create(
        _binding("RoleBinding", "ed-edits", "ClusterRole", "edit",
                 {"kind": "User", "name": "ed", "apiGroup": "rbac.authorization.k8s.io"},
                 namespace="team")
    )  # fmt: skip
    assert (await _decide(rbac, editor, "create", "deployments", api_group="apps",
                          namespace="team"))[0]  # fmt: skip
    assert (await _decide(rbac, editor, "list", "pods", namespace="team"))[0]  # edit includes view
    assert not (await _decide(rbac, editor, "create", "roles",
                              api_group="rbac.authorization.k8s.io", namespace="team"))[0]  # fmt: skip


async def test_rules_review_lists_what_is_bound(rbac: Cluster) -> None:
    review = await rbac.access.authorizer.rules_for(SA, "team")
    status = review.status()
    assert {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]} in status[
        "resourceRules"
    ]
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version",
                                                   "/version/"]} in status["nonResourceRules"]  # fmt: skip
    assert status["incomplete"] is False
    elsewhere = (await rbac.access.authorizer.rules_for(SA, "other")).status()
    assert {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]} not in elsewhere[
        "resourceRules"
    ]
    broken = await rbac.access.authorizer.rules_for(JANE, "")
    assert broken.incomplete
    assert "missing" in broken.evaluation_error


async def test_aggregation_controller_writes_the_rules(rbac: Cluster) -> None:
    from tests.cluster._helpers import eventually

    async def aggregated() -> bool:
        role = await rbac.client.get(
            "rbac.authorization.k8s.io/v1", "ClusterRole", "kaito-aggregate"
        )
        return bool(role["rules"] == [{"verbs": ["get"], "apiGroups": ["kaito.sh"],
                                        "resources": ["workspaces"]}])  # fmt: skip

    await eventually(rbac, aggregated)
    view = await rbac.client.get("rbac.authorization.k8s.io/v1", "ClusterRole", "view")
    edit = await rbac.client.get("rbac.authorization.k8s.io/v1", "ClusterRole", "edit")
    assert all(rule in edit["rules"] for rule in view["rules"])
    assert any("secrets" in r["resources"] and "create" in r["verbs"] for r in edit["rules"])
    assert not any("secrets" in r.get("resources", []) for r in view["rules"])


COVER_CASES = [
    # (owner rules, servant rules, covered)
    ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}], [{"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]}], True),
    ([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], True),
    ([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}], False),
    ([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}], False),
    ([{"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}], True),
    ([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}], True),
    ([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}], False),
    ([{"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}], [{"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}], True),
    ([{"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}], [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}], False),
    ([], [], True),
]  # fmt: skip


@pytest.mark.parametrize(("owner", "servant", "covered"), COVER_CASES)
def test_rule_coverage_for_escalation_checks(
    owner: list[dict[str, Any]], servant: list[dict[str, Any]], covered: bool
) -> None:
    from kaito.cluster._auth import covers

    assert covers([_rule(**r) for r in owner], [_rule(**r) for r in servant]) is covered
