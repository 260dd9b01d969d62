"""CRD deletion: remove every custom resource of a terminating CRD, then its cleanup finalizer."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kaito.cluster._crd import CRD_CLEANUP_FINALIZER
from kaito.cluster._crd_registry import CRDS
from kaito.cluster._errors import StatusError
from kaito.cluster._json import loads
from kaito.cluster._rest import DeleteOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._store import EventType, GroupResource, StorageEvent

__all__ = ("CrdCleanupController",)


class CrdCleanupController:
    """ControlLoop keyed by CRD name."""

    name = "crd-cleanup"

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        self._ctx = RequestContext(user="system:serviceaccount:kube-system:crd-finalizer")
        self._terminating: dict[GroupResource, str] = {}

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == CRDS:
            if event.type is not EventType.DELETED and event.obj.deleting:
                spec = loads(event.obj.data).get("spec") or {}
                self._terminating[
                    GroupResource(
                        spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
                    )
                ] = event.obj.name
                return (event.obj.name,)
            return ()
        crd = self._terminating.get(gr)
        if crd is not None and event.type is EventType.DELETED:
            return (crd,)
        return ()

    async def initial_keys(self) -> Iterable[Hashable]:
        return [s.name for s in (await self._rest.store.list(CRDS, None)).items if s.deleting]

    async def reconcile(self, key: Hashable) -> float | None:
        stored = await self._rest.store.get(CRDS, "", str(key))
        if stored is None or not stored.deleting:
            return None
        crd = loads(stored.data)
        spec = crd.get("spec") or {}
        gr = GroupResource(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        rt = self._rest.catalog.storage_type(gr)
        remaining = 0
        if rt is not None:
            for item in (await self._rest.store.list(gr, None)).items:
                remaining += 1
                if item.deleting:
                    continue
                try:
                    await self._rest.delete(
                        rt, item.namespace, item.name, DeleteOptions(), self._ctx
                    )
                except StatusError as error:
                    if error.code not in (404, 409):
                        raise
        if remaining:
            return 1.0
        finalizers = [
            f for f in crd["metadata"].get("finalizers") or [] if f != CRD_CLEANUP_FINALIZER
        ]
        crd_rt = self._rest.catalog.lookup(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions"
        )
        if crd_rt is not None:
            await self._rest.patch(
                crd_rt,
                "",
                str(key),
                "application/merge-patch+json",
                {"metadata": {"finalizers": finalizers or None, "resourceVersion": str(stored.rv)}},
                options=WriteOptions(),
                ctx=self._ctx,
            )
        self._terminating.pop(gr, None)
        return None
