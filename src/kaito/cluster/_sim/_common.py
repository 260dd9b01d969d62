"""Helpers shared by the simulated controllers: resources, conditions, events, owner references."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from kaito.apimachinery import parse_quantity
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, dumps
from kaito.cluster._meta import format_time
from kaito.cluster._rest import RequestContext, RestApi, WriteOptions
from kaito.cluster._store import GroupResource

__all__ = (
    "PODS",
    "controller_ref",
    "emit_event",
    "owner_reference",
    "pod_ready",
    "pod_requests",
    "pod_terminal",
    "set_condition",
    "template_hash",
)

PODS = GroupResource("", "pods")
NODES = GroupResource("", "nodes")


def owner_reference(owner: Obj) -> Obj:
    """A controller owner reference to ``owner`` that blocks its foreground deletion."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_ref(obj: Obj) -> Obj | None:
    """The owner reference marked ``controller: true``."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def template_hash(template: Any) -> str:
    """A short stable hash of a pod template (``pod-template-hash``, revisions)."""
    return hashlib.sha256(dumps(template)).hexdigest()[:10]


def pod_ready(pod: Obj) -> bool:
    """Phase Running with condition Ready=True."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def pod_terminal(pod: Obj) -> bool:
    """Phase Succeeded or Failed."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """Effective requests: max(sum of containers, largest init container), plus overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}

    def requests(container: Obj) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        values = dict(resources.get("limits") or {})
        values.update(resources.get("requests") or {})
        parsed = {}
        for name, quantity in values.items():
            try:
                parsed[name] = parse_quantity(quantity)
            except ValueError:
                continue
        return parsed

    for container in spec.get("containers") or []:
        for name, value in requests(container).items():
            total[name] = total.get(name, Decimal(0)) + value
    for container in spec.get("initContainers") or []:
        for name, value in requests(container).items():
            total[name] = max(total.get(name, Decimal(0)), value)
    for name, quantity in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Decimal(0)) + parse_quantity(quantity)
    return total


def set_condition(
    conditions: list[Obj],
    kind: str,
    status: str,
    *,
    reason: str = "",
    message: str = "",
    now: str,
    extra: dict[str, Any] | None = None,
) -> list[Obj]:
    """Return ``conditions`` with ``kind`` set, keeping its transition time if the status holds."""
    result = []
    found = False
    for condition in conditions:
        if condition.get("type") != kind:
            result.append(condition)
            continue
        found = True
        since = (
            condition.get("lastTransitionTime", now) if condition.get("status") == status else now
        )
        updated = {"type": kind, "status": status, "lastTransitionTime": since, **(extra or {})}
        if reason:
            updated["reason"] = reason
        if message:
            updated["message"] = message
        result.append(updated)
    if not found:
        added = {"type": kind, "status": status, "lastTransitionTime": now, **(extra or {})}
        if reason:
            added["reason"] = reason
        if message:
            added["message"] = message
        result.append(added)
    return result


async def emit_event(
    rest: RestApi,
    involved: Obj,
    *,
    type: str,
    reason: str,
    message: str,
    component: str,
    ctx: RequestContext,
) -> None:
    """Record a core/v1 Event about ``involved`` (best effort: failures are ignored)."""
    rt = rest.catalog.lookup("", "v1", "events")
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    if rt is None:
        return
    now = format_time(rest.clock())
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name', 'object')}.{secrets.token_hex(8)}",
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", ""),
            "kind": involved.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    try:
        await rest.create(rt, namespace, event, WriteOptions(), ctx)
    except StatusError:
        return


def names(objects: Iterable[Obj]) -> list[str]:
    """Object names (for logs)."""
    return [str((o.get("metadata") or {}).get("name", "")) for o in objects]
