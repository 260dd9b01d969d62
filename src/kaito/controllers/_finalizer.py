"""The Workspace finalizer: added on the first pass, removed once everything it owns is gone.

Controller layer. Finalizing deletes every object of the owned table (:data:`OWNED_OBJECTS`),
releases the provisioned nodes, sets ``WorkspaceDeleting`` and removes the finalizer. Each step
is idempotent (deleting what is gone is a no-op), so an interrupted finalization repeats safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from kaito.api import Condition, set_condition, unstructure
from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.controllers._apply import WorkspaceClient
from kaito.controllers._events import WORKSPACE_DELETED
from kaito.controllers._owned import OWNED_OBJECTS
from kaito.controllers._resources import WORKSPACES
from kaito.engine import ApiError, EventRecorder, ObjectKey
from kaito_provisioners import NodeProvisioner

__all__ = ("Finalizer", "has_finalizer")

log = structlog.get_logger(__name__)


def has_finalizer(ws: Workspace) -> bool:
    """Whether KAITO's finalizer is on the Workspace."""
    return c.WORKSPACE_FINALIZER in (ws.metadata.finalizers or ())


@attrs.frozen
class Finalizer:
    """Adds KAITO's finalizer to Workspaces and, once one is deleted, cleans up after it."""

    client: WorkspaceClient
    provisioner: NodeProvisioner | None
    events: EventRecorder

    async def add(self, raw: Mapping[str, Any], key: ObjectKey) -> None:
        """Add the finalizer (guarded by the resourceVersion the pass read)."""
        meta = raw.get("metadata") or {}
        finalizers = [*(meta.get("finalizers") or ()), c.WORKSPACE_FINALIZER]
        await self.client.patch(
            WORKSPACES,
            key,
            {
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": meta.get("resourceVersion"),
                }
            },
        )

    async def finalize(
        self, raw: Mapping[str, Any], ws: Workspace, key: ObjectKey, *, now: str
    ) -> None:
        """Delete the owned objects and provisioned nodes, then let the Workspace go."""
        finalizers = list(ws.metadata.finalizers or ())
        if c.WORKSPACE_FINALIZER not in finalizers:
            return
        namespace, name = key.namespace, key.name
        for owned in OWNED_OBJECTS:
            await self.client.delete(owned.resource, owned.key(namespace, name))
        if self.provisioner is not None:
            await self.provisioner.release(namespace, name)
        conditions = set_condition(
            (ws.status.conditions if ws.status else None),
            Condition(
                type=c.ConditionType.WORKSPACE_DELETING,
                status="True",
                reason=c.Reason.DELETED,
                message="the workspace's nodes and workloads are deleted",
                observed_generation=ws.metadata.generation,
                last_transition_time=now,
            ),
        )
        try:
            await self.client.patch_status(WORKSPACES, key, {"conditions": unstructure(conditions)})
        except ApiError as err:
            if not err.not_found:
                raise
        await self.events.event(dict(raw), WORKSPACE_DELETED, "deleted nodes and workloads")
        finalizers.remove(c.WORKSPACE_FINALIZER)
        await self._remove(raw, key, finalizers)
        log.info("workspace_finalized", workspace=name, namespace=namespace)

    async def _remove(self, raw: Mapping[str, Any], key: ObjectKey, finalizers: list[str]) -> None:
        meta = raw.get("metadata") or {}
        try:
            await self.client.patch(
                WORKSPACES,
                key,
                {
                    "metadata": {
                        "finalizers": finalizers or None,
                        "resourceVersion": meta.get("resourceVersion"),
                    }
                },
            )
        except ApiError as err:
            if err.conflict:
                refreshed = await self.client.get(WORKSPACES, key)
                remaining = [
                    f
                    for f in (refreshed.get("metadata") or {}).get("finalizers") or ()
                    if f != c.WORKSPACE_FINALIZER
                ]
                await self.client.patch(
                    WORKSPACES, key, {"metadata": {"finalizers": remaining or None}}
                )
            elif not err.not_found:
                raise
