"""Write hooks of the built-in kinds: the defaults, status resets, address allocation and
kind-specific validation kube-apiserver applies to them."""

from __future__ import annotations

import base64
import copy
from typing import Any

from kaito.apimachinery import FieldError, dns1123_label_problems, not_supported, parse_quantity
from kaito.cluster._builtins._service_ips import ServiceIPAllocator
from kaito.cluster._json import Obj
from kaito.cluster._resource_types import Strategy
from kaito.cluster._selectors import label_selector_from_object

__all__ = (
    "DeploymentStrategy",
    "JobStrategy",
    "NamespaceStrategy",
    "PodStrategy",
    "ReplicaSetStrategy",
    "SecretStrategy",
    "ServiceStrategy",
    "StatefulSetStrategy",
    "WebhookConfigurationStrategy",
    "default_pod_spec",
    "pod_qos_class",
)


def _default_container(container: Obj) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if "imagePullPolicy" not in container:
        image = str(container.get("image", ""))
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        container["imagePullPolicy"] = (
            "Always" if tag in ("", "latest") and "@" not in image else "IfNotPresent"
        )
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            http = probe.get("httpGet")
            if isinstance(http, dict):
                http.setdefault("path", "/")
                http.setdefault("scheme", "HTTP")


def default_pod_spec(spec: Obj) -> None:
    """Apply the pod defaults kube-apiserver fills on Pods and pod templates."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)
    if "serviceAccountName" in spec and "serviceAccount" not in spec:
        spec["serviceAccount"] = spec["serviceAccountName"]


def pod_qos_class(spec: Obj) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` from container requests and limits."""
    containers = [
        c
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
        if isinstance(c, dict)
    ]
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            request = requests.get(name, limit)
            if limit is None or request is None:
                guaranteed = False
                continue
            try:
                if parse_quantity(limit) != parse_quantity(request):
                    guaranteed = False
            except ValueError:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _validate_containers(spec: Obj, path: str, *, template: bool) -> list[FieldError]:
    del template
    errors: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        errors.append(FieldError("Required", f"{path}.containers"))
        return errors
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            if not isinstance(container, dict):
                continue
            cpath = f"{path}.{key}[{i}]"
            name = container.get("name")
            if not name:
                errors.append(FieldError("Required", f"{cpath}.name"))
            else:
                for problem in dns1123_label_problems(str(name)):
                    errors.append(FieldError("Invalid", f"{cpath}.name", name, problem))
                if name in names:
                    errors.append(FieldError("Duplicate", f"{cpath}.name", name))
                names.add(str(name))
            if not container.get("image"):
                errors.append(FieldError("Required", f"{cpath}.image"))
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource, quantity in (resources.get(kind) or {}).items():
                    try:
                        parse_quantity(quantity)
                    except ValueError:
                        errors.append(
                            FieldError(
                                "Invalid",
                                f"{cpath}.resources.{kind}[{resource}]",
                                quantity,
                                "quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                            )
                        )
    restart = spec.get("restartPolicy")
    if restart not in (None, "Always", "OnFailure", "Never"):
        errors.append(
            not_supported(
                f"{path}.restartPolicy",
                restart,
                ("Always", "OnFailure", "Never"),
            )
        )
    return errors


class PodStrategy(Strategy):
    """Pods: defaults, ``Pending`` status and QoS class on create, immutable spec."""

    _MUTABLE = (
        "activeDeadlineSeconds",
        "tolerations",
        "terminationGracePeriodSeconds",
        "schedulingGates",
    )

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)
            spec.setdefault("enableServiceLinks", True)
            spec.setdefault("priority", 0)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
            if "serviceAccountName" not in spec:
                spec["serviceAccountName"] = spec["serviceAccount"] = "default"
            tolerations = spec.setdefault("tolerations", [])
            if isinstance(tolerations, list):
                for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
                    if not any(isinstance(t, dict) and t.get("key") == taint for t in tolerations):
                        tolerations.append(
                            {
                                "key": taint,
                                "operator": "Exists",
                                "effect": "NoExecute",
                                "tolerationSeconds": 300,
                            }
                        )

    def prepare_create(self, obj: Obj) -> None:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(spec or {})}

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors = _validate_containers(spec, "spec", template=False)
        if old is not None:
            old_spec = copy.deepcopy(old.get("spec") or {})
            new_spec = copy.deepcopy(spec)
            for key in self._MUTABLE:
                old_spec.pop(key, None)
                new_spec.pop(key, None)
            for key in ("containers", "initContainers"):
                for container in (old_spec.get(key) or []) + (new_spec.get(key) or []):
                    if isinstance(container, dict):
                        container.pop("image", None)
            if old_spec.get("nodeName") and not new_spec.get("nodeName"):
                new_spec["nodeName"] = old_spec["nodeName"]
            if not old_spec.get("nodeName"):
                new_spec.pop("nodeName", None)
                old_spec.pop("nodeName", None)
            if old_spec != new_spec:
                errors.append(
                    FieldError(
                        "Forbidden",
                        "spec",
                        detail=(
                            "pod updates may not change fields other than "
                            "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                            "`spec.activeDeadlineSeconds`,`spec.tolerations` "
                            "(only additions to existing tolerations),"
                            "`spec.terminationGracePeriodSeconds` "
                            "(allow it to be set to 1 if it was previously negative)"
                        ),
                    )
                )
        return errors


def _validate_selector_matches(obj: Obj, *, required: bool = True) -> list[FieldError]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if selector is None:
        return [FieldError("Required", "spec.selector")] if required else []
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return [
            FieldError(
                "Invalid", "spec.selector", selector, "empty selector is invalid for deployment"
            )
        ]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not label_selector_from_object(selector).matches(labels):
        return [
            FieldError(
                "Invalid",
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        ]
    return []


def _immutable(new: Any, old: Any, path: str) -> list[FieldError]:
    if old is not None and new != old:
        return [FieldError("Invalid", path, new, "field is immutable")]
    return []


class _WorkloadStrategy(Strategy):
    def _template_spec(self, obj: Obj) -> Obj | None:
        template = (obj.get("spec") or {}).get("template")
        if isinstance(template, dict):
            spec = template.setdefault("spec", {})
            if isinstance(spec, dict):
                return spec
        return None

    def default(self, obj: Obj) -> None:
        spec = self._template_spec(obj)
        if spec is not None:
            default_pod_spec(spec)

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def _validate_template(self, obj: Obj) -> list[FieldError]:
        spec = self._template_spec(obj)
        if spec is None:
            return [FieldError("Required", "spec.template")]
        return _validate_containers(spec, "spec.template.spec", template=True)


class DeploymentStrategy(_WorkloadStrategy):
    """Deployments: rolling-update defaults, selector must match the template."""

    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        errors = _validate_selector_matches(obj) + self._validate_template(obj)
        if old is not None:
            errors += _immutable(
                (obj.get("spec") or {}).get("selector"),
                (old.get("spec") or {}).get("selector"),
                "spec.selector",
            )
        return errors


class ReplicaSetStrategy(_WorkloadStrategy):
    """ReplicaSets: one replica by default, selector must match the template."""

    def default(self, obj: Obj) -> None:
        super().default(obj)
        obj.setdefault("spec", {}).setdefault("replicas", 1)

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        del old
        return _validate_selector_matches(obj) + self._validate_template(obj)


class StatefulSetStrategy(_WorkloadStrategy):
    """StatefulSets: ordered defaults and the fields an update may change."""

    _UPDATABLE = (
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    )

    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            update.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        errors = _validate_selector_matches(obj) + self._validate_template(obj)
        policy = (obj.get("spec") or {}).get("podManagementPolicy")
        if policy not in ("OrderedReady", "Parallel"):
            errors.append(
                FieldError(
                    "Invalid",
                    "spec.podManagementPolicy",
                    policy,
                    "must be 'OrderedReady' or 'Parallel'",
                )
            )
        if old is not None:
            new_rest = {
                k: v for k, v in (obj.get("spec") or {}).items() if k not in self._UPDATABLE
            }
            old_rest = {
                k: v for k, v in (old.get("spec") or {}).items() if k not in self._UPDATABLE
            }
            if new_rest != old_rest:
                errors.append(
                    FieldError(
                        "Forbidden",
                        "spec",
                        detail=(
                            "updates to statefulset spec for fields other than 'replicas', "
                            "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                            "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                            "forbidden"
                        ),
                    )
                )
        return errors


class JobStrategy(_WorkloadStrategy):
    """Jobs: generated selector and labels bound to the Job's uid, immutable template."""

    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.setdefault("spec", {})
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")

    def prepare_create(self, obj: Obj) -> None:
        super().prepare_create(obj)
        spec = obj.setdefault("spec", {})
        meta = obj["metadata"]
        if not spec.get("manualSelector"):
            uid = meta["uid"]
            generated = {"batch.kubernetes.io/controller-uid": uid}
            spec["selector"] = {"matchLabels": generated}
            template = spec.setdefault("template", {})
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            labels.update(
                {
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": meta["name"],
                    "controller-uid": uid,
                    "job-name": meta["name"],
                }
            )

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        errors = self._validate_template(obj)
        template_spec = self._template_spec(obj) or {}
        restart = template_spec.get("restartPolicy")
        if restart not in ("OnFailure", "Never"):
            errors.append(
                not_supported(
                    "spec.template.spec.restartPolicy",
                    restart,
                    ("OnFailure", "Never"),
                )
            )
        if old is not None:
            new_spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
            errors += _immutable(
                new_spec.get("template"), old_spec.get("template"), "spec.template"
            )
            errors += _immutable(
                new_spec.get("selector"), old_spec.get("selector"), "spec.selector"
            )
            errors += _immutable(
                new_spec.get("completions"), old_spec.get("completions"), "spec.completions"
            )
        return errors


class ServiceStrategy(Strategy):
    """Services: cluster IPs from the allocator's range, node ports, immutable addresses."""

    def __init__(self, allocator: ServiceIPAllocator | None = None) -> None:
        self.allocator = allocator or ServiceIPAllocator()
        self._next_node_port = 30000

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])

    def _allocate(self, obj: Obj, old_spec: Obj | None = None) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type") == "ExternalName":
            return
        meta = obj.get("metadata") or {}
        requested = spec.get("clusterIP") or next(iter(spec.get("clusterIPs") or []), None)
        kept = old_spec is not None and requested and requested == old_spec.get("clusterIP")
        if requested != "None" and not kept:
            spec["clusterIP"] = self.allocator.allocate(
                str(meta.get("namespace", "")), str(meta.get("name", "")), requested or None
            )
        if spec["clusterIP"] != "None" or not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            for port in spec.get("ports") or []:
                if isinstance(port, dict) and not port.get("nodePort"):
                    port["nodePort"] = self._next_node_port
                    self._next_node_port += 1
        if spec.get("type") == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)

    def prepare_create(self, obj: Obj) -> None:
        self._allocate(obj)
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        if (
            not spec.get("clusterIP")
            and old_spec.get("clusterIP")
            and spec.get("type") != "ExternalName"
        ):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        old_ports = {
            (p.get("port"), p.get("protocol")): p
            for p in old_spec.get("ports") or []
            if isinstance(p, dict)
        }
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                previous = old_ports.get((port.get("port"), port.get("protocol")))
                if previous and previous.get("nodePort"):
                    port["nodePort"] = previous["nodePort"]
        if old_spec.get("clusterIP") and spec.get("clusterIP") != old_spec.get("clusterIP"):
            return  # validate() refuses the change; nothing to allocate
        self._allocate(new, old_spec)

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors: list[FieldError] = []
        if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            errors.append(
                not_supported(
                    "spec.type",
                    spec.get("type"),
                    ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"),
                )
            )
        if (
            spec.get("type") != "ExternalName"
            and spec.get("clusterIP") != "None"
            and not spec.get("ports")
        ):
            errors.append(FieldError("Required", "spec.ports"))
        for i, port in enumerate(spec.get("ports") or []):
            value = port.get("port") if isinstance(port, dict) else None
            if not isinstance(value, int) or not 1 <= value <= 65535:
                errors.append(
                    FieldError(
                        "Invalid",
                        f"spec.ports[{i}].port",
                        value,
                        "must be between 1 and 65535, inclusive",
                    )
                )
        if old is not None:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            if old_ip and spec.get("clusterIP") != old_ip and spec.get("type") != "ExternalName":
                errors.append(
                    FieldError(
                        "Invalid",
                        "spec.clusterIPs[0]",
                        spec.get("clusterIPs"),
                        "may not change once set",
                    )
                )
        return errors


class SecretStrategy(Strategy):
    """Secrets: ``stringData`` folded into base64 ``data``, type ``Opaque`` by default."""

    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()


class NamespaceStrategy(Strategy):
    """Namespaces: the ``kubernetes`` finalizer, ``Active`` phase and the name label."""

    def default(self, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if name:
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = meta["labels"] = {}
            labels["kubernetes.io/metadata.name"] = name

    def prepare_create(self, obj: Obj) -> None:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = copy.deepcopy(old.get("spec", {}))

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        del obj, old
        return []


class WebhookConfigurationStrategy(Strategy):
    """Admission webhook configurations: defaults and the required fields of ``admission/v1``."""

    def __init__(self, *, mutating: bool) -> None:
        self._mutating = mutating

    def default(self, obj: Obj) -> None:
        for hook in obj.get("webhooks") or []:
            if not isinstance(hook, dict):
                continue
            hook.setdefault("failurePolicy", "Fail")
            hook.setdefault("matchPolicy", "Equivalent")
            hook.setdefault("namespaceSelector", {})
            hook.setdefault("objectSelector", {})
            hook.setdefault("timeoutSeconds", 10)
            if self._mutating:
                hook.setdefault("reinvocationPolicy", "Never")
            for rule in hook.get("rules") or []:
                if isinstance(rule, dict):
                    rule.setdefault("scope", "*")
            service = (hook.get("clientConfig") or {}).get("service")
            if isinstance(service, dict):
                service.setdefault("port", 443)

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        del old
        errors: list[FieldError] = []
        names: set[str] = set()
        for i, hook in enumerate(obj.get("webhooks") or []):
            path = f"webhooks[{i}]"
            name = hook.get("name", "")
            if name in names:
                errors.append(FieldError("Duplicate", f"{path}.name", name))
            names.add(name)
            if hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
                errors.append(
                    FieldError(
                        "Required",
                        f"{path}.sideEffects",
                        detail="must specify one of None, NoneOnDryRun",
                    )
                    if hook.get("sideEffects") is None
                    else not_supported(
                        f"{path}.sideEffects",
                        hook.get("sideEffects"),
                        ("None", "NoneOnDryRun"),
                    )
                )
            if not hook.get("admissionReviewVersions"):
                errors.append(
                    FieldError(
                        "Required",
                        f"{path}.admissionReviewVersions",
                        detail="must specify one of v1, v1beta1",
                    )
                )
            config = hook.get("clientConfig") or {}
            if bool(config.get("url")) == bool(config.get("service")):
                errors.append(
                    FieldError(
                        "Required",
                        f"{path}.clientConfig",
                        detail="exactly one of url or service is required",
                    )
                )
        return errors
