"""The table of built-in resources the cluster serves, with their scope, names and hooks."""

from __future__ import annotations

from kaito.apimachinery import (
    compile_schema,
    dns1035_label_problems,
    dns1123_label_problems,
    path_segment_problems,
)
from kaito.cluster._builtins._schemas import kind_schema
from kaito.cluster._builtins._service_ips import ServiceIPAllocator
from kaito.cluster._builtins._strategies import (
    DeploymentStrategy,
    JobStrategy,
    NamespaceStrategy,
    PodStrategy,
    ReplicaSetStrategy,
    SecretStrategy,
    ServiceStrategy,
    StatefulSetStrategy,
    WebhookConfigurationStrategy,
)
from kaito.cluster._json import Obj
from kaito.cluster._resource_types import Codec, ResourceType, ScalePaths, Strategy
from kaito.cluster._store import GroupResource

__all__ = ("builtin_types",)

_EVENT_FIELDS = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
)


class _EventsV1Codec(Codec):
    """``events.k8s.io/v1`` Events are stored as core ``v1`` Events."""

    def to_storage(self, obj: Obj) -> None:
        for new, old in _EVENT_FIELDS:
            if new in obj:
                obj[old] = obj.pop(new)
        obj["apiVersion"] = "v1"

    def from_storage(self, obj: Obj) -> None:
        for new, old in _EVENT_FIELDS:
            if old in obj:
                obj[new] = obj.pop(old)
        obj["apiVersion"] = "events.k8s.io/v1"


_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_SELECTABLE = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def _rt(
    group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    version: str = "v1",
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    generation: bool = False,
    fields: tuple[str, ...] = (),
    strategy: Strategy | None = None,
    schema_kind: tuple[str, str] | None = None,
    **extra: object,
) -> ResourceType:
    raw = kind_schema(*(schema_kind or (group, kind)))
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=frozenset(subresources),
        storage_version=version,
        has_generation=generation,
        schema=compile_schema(raw, lenient=True),
        openapi=raw,
        selectable_fields=fields,
        strategy=strategy or Strategy(),
        **extra,  # type: ignore[arg-type]
    )


_rbac_name = path_segment_problems


def _review_types() -> list[ResourceType]:
    """Create-only reviews answered by access control and never stored."""
    create = ("create",)
    return [
        _rt("authentication.k8s.io", "TokenReview", "tokenreviews", namespaced=False, verbs=create),
        _rt("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", namespaced=False,
            verbs=create),
        *(
            _rt("authorization.k8s.io", kind, kind.lower() + "s", namespaced=namespaced,
                verbs=create)
            for kind, namespaced in (
                ("SelfSubjectAccessReview", False),
                ("SelfSubjectRulesReview", False),
                ("SubjectAccessReview", False),
                ("LocalSubjectAccessReview", True),
            )
        ),
    ]  # fmt: skip


def builtin_types(*, service_ips: ServiceIPAllocator | None = None) -> list[ResourceType]:
    """Fresh built-in resource types (strategies hold per-cluster state such as IP allocation);
    Services take their cluster IPs from ``service_ips`` (a fresh default-range one if omitted)."""
    apps_scale = ScalePaths(label_selector=".spec.selector")
    return [
        _rt(
            "",
            "Namespace",
            "namespaces",
            namespaced=False,
            short=("ns",),
            subresources=("status", "finalize"),
            fields=("status.phase",),
            strategy=NamespaceStrategy(),
            name_validator=dns1123_label_problems,
        ),
        _rt(
            "",
            "Node",
            "nodes",
            namespaced=False,
            short=("no",),
            subresources=("status",),
            fields=("spec.unschedulable",),
        ),
        _rt(
            "",
            "Pod",
            "pods",
            short=("po",),
            categories=("all",),
            subresources=("status", "binding", "log", "exec", "attach", "portforward"),
            fields=_POD_FIELDS,
            strategy=PodStrategy(),
        ),
        _rt(
            "",
            "Service",
            "services",
            short=("svc",),
            categories=("all",),
            subresources=("status",),
            strategy=ServiceStrategy(service_ips),
            name_validator=dns1035_label_problems,
        ),
        _rt("", "Endpoints", "endpoints", short=("ep",), allow_create_on_update=True),
        _rt("", "ConfigMap", "configmaps", short=("cm",)),
        _rt("", "Secret", "secrets", fields=("type",), strategy=SecretStrategy()),
        _rt("", "ServiceAccount", "serviceaccounts", short=("sa",), subresources=("token",)),
        _rt(
            "",
            "Event",
            "events",
            short=("ev",),
            fields=_EVENT_SELECTABLE,
            allow_create_on_update=True,
        ),
        _rt(
            "",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            short=("pvc",),
            subresources=("status",),
        ),
        _rt(
            "",
            "PersistentVolume",
            "persistentvolumes",
            namespaced=False,
            short=("pv",),
            subresources=("status",),
        ),
        _rt("", "PodTemplate", "podtemplates"),
        _rt(
            "apps",
            "Deployment",
            "deployments",
            short=("deploy",),
            categories=("all",),
            subresources=("status", "scale"),
            generation=True,
            strategy=DeploymentStrategy(),
            scale=apps_scale,
        ),
        _rt(
            "apps",
            "StatefulSet",
            "statefulsets",
            short=("sts",),
            categories=("all",),
            subresources=("status", "scale"),
            generation=True,
            strategy=StatefulSetStrategy(),
            scale=apps_scale,
        ),
        _rt(
            "apps",
            "ReplicaSet",
            "replicasets",
            short=("rs",),
            categories=("all",),
            subresources=("status", "scale"),
            generation=True,
            strategy=ReplicaSetStrategy(),
            scale=apps_scale,
        ),
        _rt(
            "apps",
            "DaemonSet",
            "daemonsets",
            short=("ds",),
            categories=("all",),
            subresources=("status",),
            generation=True,
        ),
        _rt("apps", "ControllerRevision", "controllerrevisions"),
        _rt(
            "batch",
            "Job",
            "jobs",
            categories=("all",),
            subresources=("status",),
            generation=True,
            strategy=JobStrategy(),
        ),
        _rt(
            "batch",
            "CronJob",
            "cronjobs",
            short=("cj",),
            categories=("all",),
            subresources=("status",),
            generation=True,
        ),
        _rt("coordination.k8s.io", "Lease", "leases"),
        _rt(
            "events.k8s.io",
            "Event",
            "events",
            short=("ev",),
            bucket=GroupResource("", "events"),
            codec=_EventsV1Codec(),
            allow_create_on_update=True,
        ),
        _rt("discovery.k8s.io", "EndpointSlice", "endpointslices"),
        _rt("storage.k8s.io", "StorageClass", "storageclasses", namespaced=False, short=("sc",)),
        _rt(
            "scheduling.k8s.io",
            "PriorityClass",
            "priorityclasses",
            namespaced=False,
            short=("pc",),
            generation=True,
        ),
        _rt(
            "policy",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            short=("pdb",),
            subresources=("status",),
            generation=True,
        ),
        *_review_types(),
        # RBAC names are path segments (``system:basic-user``), as in kube-apiserver.
        _rt("rbac.authorization.k8s.io", "Role", "roles", name_validator=_rbac_name),
        _rt("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", name_validator=_rbac_name),
        _rt(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            namespaced=False,
            name_validator=_rbac_name,
        ),
        _rt(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "clusterrolebindings",
            namespaced=False,
            name_validator=_rbac_name,
        ),
        _rt(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            namespaced=False,
            categories=("api-extensions",),
            generation=True,
            strategy=WebhookConfigurationStrategy(mutating=False),
        ),
        _rt(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            namespaced=False,
            categories=("api-extensions",),
            generation=True,
            strategy=WebhookConfigurationStrategy(mutating=True),
        ),
    ]
