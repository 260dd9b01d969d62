"""Garbage collection of nodes whose Workspace is gone, as a controller of the manager.

Provisioner layer (uses the engine, not the controllers). A Workspace deleted the normal way
releases its nodes through its finalizer; this sweep catches the rest (a finalizer removed by
hand, a manager killed between a create and the status that records it), as upstream's
gpu-provisioner garbage-collects orphan agent pools.
"""

from __future__ import annotations

from typing import Final

import structlog

from kaito.engine import Controller, Informer, Manager, ObjectKey, Result
from kaito_provisioners._base import CollectsGarbage

__all__ = ("GC_CONTROLLER", "add_garbage_collector")

log = structlog.get_logger(__name__)

GC_CONTROLLER: Final = "node-garbage-collector"
_SWEEP: Final = ObjectKey("", "sweep")


def add_garbage_collector(
    manager: Manager, provisioner: CollectsGarbage, workspaces: Informer, *, interval: float
) -> Controller:
    """Sweep every ``interval`` seconds (the first once the manager's caches have synced)."""

    def exists(namespace: str, name: str) -> bool:
        return workspaces.store.get(ObjectKey(namespace, name)) is not None

    async def sweep(key: ObjectKey) -> Result:
        deleted = await provisioner.collect_garbage(exists)
        if deleted:
            log.info("orphan_nodes_collected", count=deleted)
        return Result(requeue_after=interval)

    controller = manager.add_controller(GC_CONTROLLER, sweep, reconcile_timeout=120.0)
    controller.add(_SWEEP)
    return controller
