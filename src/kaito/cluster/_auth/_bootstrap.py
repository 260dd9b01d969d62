"""The bootstrap RBAC policy kube-apiserver creates at start: the user-facing ClusterRoles
(``cluster-admin``, ``admin``, ``edit``, ``view``, aggregated from ``system:aggregate-to-*``), the
discovery and self-review roles every user holds, and their bindings. The rules are facts of
Kubernetes v1.32's bootstrap policy."""

from __future__ import annotations

from typing import Any

__all__ = ("bootstrap_policy",)

_RW = ("create", "delete", "deletecollection", "patch", "update")
_READ = ("get", "list", "watch")
_ALL = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_ANNOTATION = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
_AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def _rule(groups: str, resources: str, verbs: tuple[str, ...]) -> dict[str, Any]:
    return {"apiGroups": groups.split(",") if groups else [""], "resources": resources.split(),
            "verbs": list(verbs)}  # fmt: skip


def _urls(urls: str, verbs: tuple[str, ...] = ("get",)) -> dict[str, Any]:
    return {"nonResourceURLs": urls.split(), "verbs": list(verbs)}


def _role(
    name: str,
    rules: list[dict[str, Any]] | None,
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: str = "",
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {**_LABEL, **(labels or {})},
                     "annotations": dict(_ANNOTATION)},
    }  # fmt: skip
    if aggregate_from:
        selector = {"matchLabels": {_AGGREGATE + aggregate_from: "true"}}
        role["aggregationRule"] = {"clusterRoleSelectors": [selector]}
        role["rules"] = []
    else:
        role["rules"] = rules or []
    return role


def _binding(name: str, role: str, *groups: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(_LABEL), "annotations": dict(_ANNOTATION)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups
        ],
    }


def bootstrap_policy() -> list[dict[str, Any]]:
    """The ClusterRoles, then the ClusterRoleBindings, to create in a new cluster."""
    aggregate_to_view = [
        _rule("", "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status "
              "pods replicationcontrollers replicationcontrollers/scale serviceaccounts "
              "services services/status", _READ),
        _rule("", "bindings events limitranges namespaces/status pods/log pods/status "
              "replicationcontrollers/status resourcequotas resourcequotas/status", _READ),
        _rule("", "namespaces", _READ),
        _rule("discovery.k8s.io", "endpointslices", _READ),
        _rule("apps", "controllerrevisions daemonsets daemonsets/status deployments "
              "deployments/scale deployments/status replicasets replicasets/scale "
              "replicasets/status statefulsets statefulsets/scale statefulsets/status", _READ),
        _rule("autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status", _READ),
        _rule("batch", "cronjobs cronjobs/status jobs jobs/status", _READ),
        _rule("extensions", "daemonsets daemonsets/status deployments deployments/scale "
              "deployments/status ingresses ingresses/status networkpolicies replicasets "
              "replicasets/scale replicasets/status replicationcontrollers/scale", _READ),
        _rule("policy", "poddisruptionbudgets poddisruptionbudgets/status", _READ),
        _rule("networking.k8s.io", "ingresses ingresses/status networkpolicies", _READ),
    ]  # fmt: skip
    aggregate_to_edit = [
        _rule("", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy",
              _READ),
        _rule("", "serviceaccounts", ("impersonate",)),
        _rule("", "pods pods/attach pods/exec pods/portforward pods/proxy", _RW),
        _rule("", "pods/eviction", ("create",)),
        _rule("", "configmaps events persistentvolumeclaims replicationcontrollers "
              "replicationcontrollers/scale secrets serviceaccounts services services/proxy",
              _RW),
        _rule("", "serviceaccounts/token", ("create",)),
        _rule("apps", "daemonsets deployments deployments/rollback deployments/scale "
              "replicasets replicasets/scale statefulsets statefulsets/scale", _RW),
        _rule("autoscaling", "horizontalpodautoscalers", _RW),
        _rule("batch", "cronjobs jobs", _RW),
        _rule("extensions", "daemonsets deployments deployments/rollback deployments/scale "
              "ingresses networkpolicies replicasets replicasets/scale "
              "replicationcontrollers/scale", _RW),
        _rule("policy", "poddisruptionbudgets", _RW),
        _rule("networking.k8s.io", "ingresses networkpolicies", _RW),
        _rule("coordination.k8s.io", "leases", _ALL),
    ]  # fmt: skip
    aggregate_to_admin = [
        _rule("authorization.k8s.io", "localsubjectaccessreviews", ("create",)),
        _rule("rbac.authorization.k8s.io", "rolebindings roles", _ALL),
    ]
    roles = [
        _role("cluster-admin", [_rule("*", "*", ("*",)), _urls("*", ("*",))]),
        _role("admin", None, aggregate_from="admin"),
        _role("edit", None, labels={_AGGREGATE + "admin": "true"}, aggregate_from="edit"),
        _role("view", None, labels={_AGGREGATE + "edit": "true"}, aggregate_from="view"),
        _role("system:aggregate-to-admin", aggregate_to_admin,
              labels={_AGGREGATE + "admin": "true"}),
        _role("system:aggregate-to-edit", aggregate_to_edit,
              labels={_AGGREGATE + "edit": "true"}),
        _role("system:aggregate-to-view", aggregate_to_view,
              labels={_AGGREGATE + "view": "true"}),
        _role("system:basic-user", [
            _rule("authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews",
                  ("create",)),
            _rule("authentication.k8s.io", "selfsubjectreviews", ("create",)),
        ]),
        _role("system:discovery", [
            _urls("/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz "
                  "/version /version/"),
        ]),
        _role("system:public-info-viewer", [_urls("/healthz /livez /readyz /version /version/")]),
        _role("system:monitoring", [
            _urls("/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz "
                  "/readyz/*"),
        ]),
        _role("system:auth-delegator", [
            _rule("authentication.k8s.io", "tokenreviews", ("create",)),
            _rule("authorization.k8s.io", "subjectaccessreviews", ("create",)),
        ]),
        _role("system:service-account-issuer-discovery",
              [_urls("/.well-known/openid-configuration /openid/v1/jwks")]),
    ]  # fmt: skip
    bindings = [
        _binding("cluster-admin", "cluster-admin", "system:masters"),
        _binding("system:basic-user", "system:basic-user", "system:authenticated"),
        _binding("system:discovery", "system:discovery", "system:authenticated"),
        _binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            "system:authenticated",
            "system:unauthenticated",
        ),
        _binding("system:monitoring", "system:monitoring", "system:monitoring"),
        _binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            "system:serviceaccounts",
        ),
    ]
    return roles + bindings
