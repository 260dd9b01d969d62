"""Keeps the catalog in step with stored CustomResourceDefinitions: a CRD committed to the store
is served at once, a changed one is re-registered, a deleted one stops being served."""

from __future__ import annotations

import structlog

from kaito.cluster._crd import custom_resource_types
from kaito.cluster._json import Obj, loads
from kaito.cluster._resource_types import Catalog
from kaito.cluster._store import EventType, GroupResource, Storage, StorageEvent

__all__ = ("CRDS", "CrdRegistry")

CRDS = GroupResource("apiextensions.k8s.io", "customresourcedefinitions")
log = structlog.get_logger(__name__)


class CrdRegistry:
    """Storage listener that registers custom resource types in a :class:`Catalog`."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._specs: dict[str, Obj] = {}

    def attach(self, store: Storage) -> None:
        """Start following CRD commits."""
        store.add_listener(self._on_commit)

    async def load(self, store: Storage) -> None:
        """Register every CRD already stored (durable stores restarting)."""
        snapshot = await store.list(CRDS, None)
        for stored in snapshot.items:
            self._register(loads(stored.data))

    def _on_commit(self, gr: GroupResource, event: StorageEvent) -> None:
        if gr != CRDS:
            return
        crd = loads(event.obj.data)
        if event.type is EventType.DELETED:
            self._unregister(crd)
        else:
            self._register(crd)

    def _register(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        spec = crd.get("spec") or {}
        if self._specs.get(name) == spec:
            return
        previous = self._specs.get(name)
        if previous is not None:
            self._catalog.remove(
                str(previous.get("group", "")), str((previous.get("names") or {}).get("plural", ""))
            )
        for rt in custom_resource_types(crd):
            self._catalog.add(rt)
        self._specs[name] = spec
        log.debug("crd_registered", crd=name)

    def _unregister(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        spec = self._specs.pop(name, None) or crd.get("spec") or {}
        self._catalog.remove(
            str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", ""))
        )
        log.debug("crd_unregistered", crd=name)
