"""The scheduler: binds Pending Pods to Nodes that match their nodeSelector, required node affinity,
taints and resource requests (``nvidia.com/gpu`` included); otherwise reports ``PodScheduled=False``
with reason ``Unschedulable`` and kube-scheduler's message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from decimal import Decimal
from typing import Any, cast

from kaito.apimachinery import parse_quantity
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, loads
from kaito.cluster._meta import format_time
from kaito.cluster._rest import RequestContext, RestApi, WriteOptions
from kaito.cluster._sim._common import (
    NODES,
    PODS,
    emit_event,
    pod_requests,
    pod_terminal,
    set_condition,
)
from kaito.cluster._store import EventType, GroupResource, StorageEvent

__all__ = ("Scheduler", "node_fits")

_SCHEDULER = "default-scheduler"


def _expression_matches(expression: Obj, labels: dict[str, str]) -> bool:
    key = expression.get("key", "")
    op = expression.get("operator", "")
    values = [str(v) for v in expression.get("values") or []]
    value = labels.get(key)
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound
    return False


def _affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:
        expressions = term.get("matchExpressions") or []
        field_expressions = term.get("matchFields") or []
        if not expressions and not field_expressions:
            continue
        if all(_expression_matches(e, labels) for e in expressions) and all(
            _expression_matches(e, fields) for e in field_expressions
        ):
            return True
    return False


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect", "")
        if effect and effect != taint.get("effect"):
            continue
        operator = toleration.get("operator", "Equal")
        key = toleration.get("key", "")
        if not key and operator == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_fits(pod: Obj, node: Obj, used: dict[str, Decimal], pod_count: int) -> str | None:
    """``None`` when ``pod`` fits on ``node``; otherwise the scheduler's reason for this node."""
    spec = pod.get("spec") or {}
    node_spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    tolerations = list(spec.get("tolerations") or [])
    if not ready and not _tolerates(
        tolerations, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    ):
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    if node_spec.get("unschedulable") and not _tolerates(
        tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        return "node(s) were unschedulable"
    if not _affinity_matches(spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            tolerations, taint
        ):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    max_pods = allocatable.get("pods")
    if max_pods is not None and pod_count + 1 > int(parse_quantity(max_pods)):
        return "Too many pods"
    for resource, amount in sorted(pod_requests(pod).items()):
        if amount <= 0:
            continue
        available = allocatable.get(resource)
        free = (parse_quantity(available) if available is not None else Decimal(0)) - used.get(
            resource, Decimal(0)
        )
        if amount > free:
            return f"Insufficient {resource}"
    return None


def _message(total: int, reasons: Counter[str]) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return (
        f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )


class Scheduler:
    """ControlLoop keyed by Pending Pods ``(namespace, name)``."""

    name = "scheduler"

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        self._ctx = RequestContext(user="system:kube-scheduler")
        self._pending: set[tuple[str, str]] = set()

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == NODES and event.type is not EventType.DELETED:
            return list(self._pending)
        if gr != PODS:
            return ()
        key = (event.obj.namespace, event.obj.name)
        if event.type is EventType.DELETED:
            self._pending.discard(key)
            return list(self._pending)
        node_name = event.obj.fields[0]
        if node_name or event.obj.deleting:
            self._pending.discard(key)
            return ()
        return (key,)

    async def initial_keys(self) -> Iterable[Hashable]:
        snapshot = await self._rest.store.list(PODS, None)
        return [(s.namespace, s.name) for s in snapshot.items if not s.fields[0] and not s.deleting]

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = cast("tuple[str, str]", key)
        stored = await self._rest.store.get(PODS, namespace, name)
        if stored is None or stored.deleting:
            self._pending.discard((namespace, name))
            return None
        pod = loads(stored.data)
        spec = pod.get("spec") or {}
        if (
            spec.get("nodeName")
            or pod_terminal(pod)
            or spec.get("schedulerName", _SCHEDULER) != _SCHEDULER
        ):
            self._pending.discard((namespace, name))
            return None
        if spec.get("schedulingGates"):
            return None
        nodes = [loads(n.data) for n in (await self._rest.store.list(NODES, None)).items]
        used: dict[str, dict[str, Decimal]] = {}
        counts: Counter[str] = Counter()
        for other in (await self._rest.store.list(PODS, None)).items:
            node_name = other.fields[0]
            if not node_name:
                continue
            other_pod = loads(other.data)
            if pod_terminal(other_pod):
                continue
            counts[node_name] += 1
            bucket = used.setdefault(node_name, {})
            for resource, amount in pod_requests(other_pod).items():
                bucket[resource] = bucket.get(resource, Decimal(0)) + amount
        reasons: Counter[str] = Counter()
        chosen = None
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            node_name = node["metadata"]["name"]
            reason = node_fits(pod, node, used.get(node_name, {}), counts[node_name])
            if reason is None:
                chosen = node_name
                break
            reasons[reason] += 1
        if chosen is not None:
            await self._bind(pod, chosen)
            self._pending.discard((namespace, name))
            return None
        self._pending.add((namespace, name))
        await self._unschedulable(pod, _message(len(nodes), reasons))
        return None

    async def _bind(self, pod: Obj, node: str) -> None:
        rt = self._rest.catalog.lookup("", "v1", "pods")
        assert rt is not None
        meta = pod["metadata"]
        try:
            await self._rest.bind(
                rt,
                meta["namespace"],
                meta["name"],
                {"target": {"kind": "Node", "name": node}},
                self._ctx,
            )
        except StatusError as error:
            if error.code in (404, 409):
                return
            raise
        await emit_event(
            self._rest,
            pod,
            type="Normal",
            reason="Scheduled",
            message=f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            component=_SCHEDULER,
            ctx=self._ctx,
        )

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        rt = self._rest.catalog.lookup("", "v1", "pods")
        assert rt is not None
        meta = pod["metadata"]
        conditions = list((pod.get("status") or {}).get("conditions") or [])
        current: Any = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == message:
            return
        now = format_time(self._rest.clock())
        conditions = set_condition(
            conditions,
            "PodScheduled",
            "False",
            reason="Unschedulable",
            message=message,
            now=now,
            extra={"lastProbeTime": None},
        )
        try:
            await self._rest.patch(
                rt,
                meta["namespace"],
                meta["name"],
                "application/merge-patch+json",
                {"status": {"conditions": conditions}},
                options=WriteOptions(),
                ctx=self._ctx,
                subresource="status",
            )
        except StatusError as error:
            if error.code == 404:
                return
            raise
        await emit_event(
            self._rest,
            pod,
            type="Warning",
            reason="FailedScheduling",
            message=message,
            component=_SCHEDULER,
            ctx=self._ctx,
        )
