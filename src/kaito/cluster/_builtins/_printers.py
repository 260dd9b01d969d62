"""Table printers of the built-in kinds: the columns ``kubectl get`` shows for each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kaito.cluster._json import Obj
from kaito.cluster._resource_types import PrinterColumn

__all__ = ("PRINTERS", "Printer", "human_duration", "parse_time")

Row = list[Any]
Printer = tuple[tuple[PrinterColumn, ...], Callable[[Obj, dt.datetime], Row]]


def parse_time(value: object) -> dt.datetime | None:
    """Parse an RFC 3339 timestamp; ``None`` for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """kubectl's short age format (``45s``, ``3m10s``, ``5h``, ``2d3h``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    days = hours // 24
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{days // 365}y" if rest == 0 else f"{days // 365}y{rest}d"
    return f"{days // 365}y"


def _age(obj: Obj, now: dt.datetime, key: str = "creationTimestamp") -> str:
    moment = parse_time((obj.get("metadata") or {}).get(key))
    return "<unknown>" if moment is None else human_duration((now - moment).total_seconds())


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


_NAME = PrinterColumn(
    "Name",
    "string",
    format="name",
    description=(
        "Name must be unique within a namespace. Is required when creating resources, "
        "although some resources may allow a client to request the generation of an "
        "appropriate name automatically."
    ),
)
_AGE = PrinterColumn(
    "Age",
    "string",
    description=(
        "CreationTimestamp is a timestamp representing the server time when this object "
        "was created."
    ),
)


def _col(
    name: str, type: str = "string", priority: int = 0, description: str = ""
) -> PrinterColumn:
    return PrinterColumn(name, type, description=description or name, priority=priority)


def _containers(spec: Obj) -> tuple[str, str]:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return ",".join(str(c.get("name", "")) for c in containers), ",".join(
        str(c.get("image", "")) for c in containers
    )


def _selector_text(selector: Obj | None) -> str:
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        op = expression.get("operator", "")
        values = ",".join(expression.get("values") or [])
        key = expression.get("key", "")
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(op, key)
        )
    return ",".join(parts) or "<none>"


def _pod_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase", "Unknown")
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting")
        terminated = (s.get("state") or {}).get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason") and status.get("phase") not in ("Succeeded",):
            reason = terminated["reason"]
    if status.get("phase") == "Succeeded":
        reason = "Completed"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        _name(obj),
        f"{ready}/{total}",
        reason,
        restarts,
        _age(obj, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{0}/{len(gates)}" if gates else "<none>",
    ]


def _node_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready", ""), "Unknown")
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = sorted(
        k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k
    )
    info = status.get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        _name(obj),
        state,
        ",".join(roles) or "<none>",
        _age(obj, now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _deployment_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        _name(obj),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        containers,
        images,
        _selector_text(spec.get("selector")),
    ]


def _statefulset_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        _name(obj),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(obj, now),
        containers,
        images,
    ]


def _replicaset_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        _name(obj),
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
        containers,
        images,
        _selector_text(spec.get("selector")),
    ]


def _job_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif (obj.get("metadata") or {}).get("deletionTimestamp"):
        state = "Terminating"
    elif conditions.get("Suspended") == "True":
        state = "Suspended"
    else:
        state = "Running"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration(((end or now) - start).total_seconds())
    containers, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        _name(obj),
        state,
        f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        _age(obj, now),
        containers,
        images,
        _selector_text(spec.get("selector")),
    ]


def _service_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ports = []
    for port in spec.get("ports") or []:
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    ingress = [
        i.get("ip") or i.get("hostname")
        for i in (status.get("loadBalancer") or {}).get("ingress") or []
    ]
    external = ",".join(filter(None, ingress)) or ",".join(spec.get("externalIPs") or [])
    if not external:
        external = (
            "<pending>"
            if spec.get("type") == "LoadBalancer"
            else spec.get("externalName") or "<none>"
        )
    selector = spec.get("selector") or {}
    return [
        _name(obj),
        spec.get("type", ""),
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        _age(obj, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _event_row(obj: Obj, now: dt.datetime) -> Row:
    involved = obj.get("involvedObject") or {}
    last = (
        obj.get("lastTimestamp")
        or obj.get("eventTime")
        or (obj.get("metadata") or {}).get("creationTimestamp")
    )
    first = obj.get("firstTimestamp") or last
    last_time, first_time = parse_time(last), parse_time(first)
    source = obj.get("source") or {}
    return [
        "<unknown>" if last_time is None else human_duration((now - last_time).total_seconds()),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
        involved.get("fieldPath", ""),
        source.get("component") or obj.get("reportingComponent", ""),
        "<unknown>" if first_time is None else human_duration((now - first_time).total_seconds()),
        obj.get("count", 1),
        _name(obj),
    ]


def _simple(*columns: tuple[str, Callable[[Obj], Any]]) -> Printer:
    cols = (_NAME, *(_col(name) for name, _ in columns), _AGE)

    def row(obj: Obj, now: dt.datetime) -> Row:
        return [_name(obj), *(fn(obj) for _, fn in columns), _age(obj, now)]

    return cols, row


PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Pod"): (
        (
            _NAME,
            _col(
                "Ready",
                description="The aggregate readiness state of this pod for accepting traffic.",
            ),
            _col("Status", description="The aggregate status of the containers in this pod."),
            _col(
                "Restarts",
                description=(
                    "The number of times the containers in this pod have been restarted "
                    "and when the last container in this pod has restarted."
                ),
            ),
            _AGE,
            _col("IP", priority=1, description="The IP address assigned to the pod"),
            _col("Node", priority=1, description="The name of the node where the Pod is running"),
            _col(
                "Nominated Node",
                priority=1,
                description="The name of the node where the Pod is nominated",
            ),
            _col("Readiness Gates", priority=1, description="The readiness gates of the Pod"),
        ),
        _pod_row,
    ),
    ("", "Node"): (
        (
            _NAME,
            _col("Status"),
            _col("Roles"),
            _AGE,
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ),
        _node_row,
    ),
    ("apps", "Deployment"): (
        (
            _NAME,
            _col("Ready"),
            _col("Up-to-date"),
            _col("Available"),
            _AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ),
        _deployment_row,
    ),
    ("apps", "StatefulSet"): (
        (_NAME, _col("Ready"), _AGE, _col("Containers", priority=1), _col("Images", priority=1)),
        _statefulset_row,
    ),
    ("apps", "ReplicaSet"): (
        (
            _NAME,
            _col("Desired"),
            _col("Current"),
            _col("Ready"),
            _AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ),
        _replicaset_row,
    ),
    ("batch", "Job"): (
        (
            _NAME,
            _col("Status"),
            _col("Completions"),
            _col("Duration"),
            _AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ),
        _job_row,
    ),
    ("", "Service"): (
        (
            _NAME,
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _AGE,
            _col("Selector", priority=1),
        ),
        _service_row,
    ),
    ("", "Event"): (
        (
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Message"),
            _col("Subobject", priority=1),
            _col("Source", priority=1),
            _col("First Seen", priority=1),
            _col("Count", "integer", priority=1),
            _col("Name", priority=1),
        ),
        _event_row,
    ),
    ("", "Namespace"): _simple(("Status", lambda o: (o.get("status") or {}).get("phase", ""))),
    ("", "ConfigMap"): _simple(
        ("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))
    ),
    ("", "Secret"): _simple(
        ("Type", lambda o: o.get("type", "")), ("Data", lambda o: len(o.get("data") or {}))
    ),
    ("", "ServiceAccount"): _simple(("Secrets", lambda o: len(o.get("secrets") or []))),
    ("", "Endpoints"): _simple(
        (
            "Endpoints",
            lambda o: (
                ",".join(
                    f"{a.get('ip')}:{p.get('port')}"
                    for s in o.get("subsets") or []
                    for a in s.get("addresses") or []
                    for p in s.get("ports") or [{}]
                )
                or "<none>"
            ),
        )
    ),
    ("coordination.k8s.io", "Lease"): _simple(
        ("Holder", lambda o: (o.get("spec") or {}).get("holderIdentity", ""))
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (
        (_NAME, PrinterColumn("Created At", "date")),
        lambda o, now: [_name(o), (o.get("metadata") or {}).get("creationTimestamp", "")],
    ),
}
