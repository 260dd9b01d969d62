"""Create-or-update of owned objects, idempotent and safe to repeat after any interruption.

Controller layer. The desired object is compared with the cached one on the fields this
controller owns; only a difference costs a request, and a create that loses a race (409) counts
as done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

import structlog

from kaito.engine import ApiError, ObjectKey, ObjectList, Resource

__all__ = ("ApplyResult", "WorkspaceClient", "ensure_object")

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
ApplyResult = Literal["created", "updated", "unchanged"]


class WorkspaceClient(Protocol):
    """Protocol: the API calls the Workspace controllers make (``KubeClient`` provides them)."""

    async def get(self, resource: Resource, key: ObjectKey) -> JSON: ...

    async def list(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> ObjectList: ...

    async def create(
        self, resource: Resource, obj: JSON, *, namespace: str | None = None
    ) -> JSON: ...

    async def patch(
        self, resource: Resource, key: ObjectKey, patch: Any, *, patch_type: Any = "merge"
    ) -> JSON: ...

    async def patch_status(self, resource: Resource, key: ObjectKey, status: JSON) -> JSON: ...

    async def delete(self, resource: Resource, key: ObjectKey) -> None: ...


def _owned_view(obj: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    view = {f: obj.get(f) for f in fields}
    view["labels"] = meta.get("labels") or {}
    view["annotations"] = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k.startswith(("kaito.sh/", "workspace.kaito.io/"))
    }
    return view


def _subset(desired: Any, actual: Any) -> bool:
    """Whether ``actual`` already holds everything ``desired`` says (server defaults ignored)."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(_subset(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(_subset(d, a) for d, a in zip(desired, actual, strict=True))
    return bool(desired == actual)


async def ensure_object(
    client: WorkspaceClient,
    resource: Resource,
    desired: JSON,
    current: Mapping[str, Any] | None,
    *,
    fields: tuple[str, ...] = ("spec",),
) -> ApplyResult:
    """Create ``desired`` when absent; merge-patch its owned ``fields`` when they differ."""
    meta = desired["metadata"]
    key = ObjectKey(meta.get("namespace") or "", meta["name"])
    if current is None:
        try:
            await client.create(resource, desired)
        except ApiError as err:
            if err.status != 409:
                raise
            return "unchanged"  # created meanwhile (a stale cache, or another pass)
        log.info("object_created", kind=desired.get("kind"), name=key.name, namespace=key.namespace)
        return "created"
    if _subset(_owned_view(desired, fields), _owned_view(current, fields)):
        return "unchanged"
    patch: JSON = {f: desired[f] for f in fields if f in desired}
    patch["metadata"] = {
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
    }
    await client.patch(resource, key, patch)
    log.info("object_updated", kind=desired.get("kind"), name=key.name, namespace=key.namespace)
    return "updated"
