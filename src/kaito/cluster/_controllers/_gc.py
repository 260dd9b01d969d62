"""The garbage collector: deletes dependents whose owners are gone (``ownerReferences``), runs
foreground deletion (dependents first, then the owner) and orphaning."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, cast

from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, loads
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import DeleteOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._store import EventType, GroupResource, StorageEvent, StoredObject

__all__ = ("GarbageCollector",)

Key = tuple[GroupResource, str, str]
_MERGE = "application/merge-patch+json"


def _finalizers(stored: StoredObject) -> list[str]:
    return list(loads(stored.data)["metadata"].get("finalizers") or [])


class GarbageCollector:
    """ControlLoop keyed by ``("dependent" | "owner", group-resource, namespace, name)``."""

    name = "garbage-collector"

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        self._ctx = RequestContext(
            user="system:serviceaccount:kube-system:generic-garbage-collector"
        )
        self._objects: dict[str, tuple[Key, bool]] = {}
        self._dependents: dict[str, set[Key]] = {}
        self._owners: dict[Key, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ graph

    def _link(self, key: Key, owners: tuple[str, ...]) -> None:
        previous = self._owners.get(key, ())
        if previous == owners:
            return
        for uid in previous:
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[uid]
        if owners:
            self._owners[key] = owners
            for uid in owners:
                self._dependents.setdefault(uid, set()).add(key)
        else:
            self._owners.pop(key, None)

    def _observe(self, gr: GroupResource, stored: StoredObject) -> list[Hashable]:
        key: Key = (gr, stored.namespace, stored.name)
        was = self._objects.get(stored.uid)
        self._objects[stored.uid] = (key, stored.deleting)
        self._link(key, stored.owners)
        keys: list[Hashable] = []
        if stored.owners and any(
            uid not in self._objects or self._objects[uid][1] for uid in stored.owners
        ):
            keys.append(("dependent", *key))
        if stored.deleting:
            keys.append(("owner", *key))
            if was is None or not was[1]:
                keys.extend(("dependent", *d) for d in self._dependents.get(stored.uid, ()))
        return keys

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        stored = event.obj
        if event.type is not EventType.DELETED:
            if (
                not stored.owners
                and not stored.deleting
                and stored.uid in self._objects
                and not self._owners.get((gr, stored.namespace, stored.name))
            ):
                return ()
            return self._observe(gr, stored)
        key: Key = (gr, stored.namespace, stored.name)
        self._objects.pop(stored.uid, None)
        keys: list[Hashable] = []
        for uid in self._owners.get(key, ()):
            owner = self._objects.get(uid)
            if owner is not None and owner[1]:
                keys.append(("owner", *owner[0]))
        self._link(key, ())
        keys.extend(("dependent", *d) for d in self._dependents.pop(stored.uid, ()))
        return keys

    async def initial_keys(self) -> Iterable[Hashable]:
        keys: list[Hashable] = []
        store = self._rest.store
        for gr in store.buckets():
            for stored in (await store.list(gr, None)).items:
                self._objects[stored.uid] = ((gr, stored.namespace, stored.name), stored.deleting)
        for gr in store.buckets():
            for stored in (await store.list(gr, None)).items:
                keys.extend(self._observe(gr, stored))
        return keys

    # ------------------------------------------------------------------ reconcile

    def _type(self, gr: GroupResource) -> ResourceType | None:
        return self._rest.catalog.storage_type(gr)

    async def reconcile(self, key: Hashable) -> float | None:
        role, gr, namespace, name = cast("tuple[str, GroupResource, str, str]", key)
        rt = self._type(gr)
        if rt is None:
            return None
        stored = await self._rest.store.get(gr, namespace, name)
        if stored is None:
            return None
        if role == "dependent":
            await self._dependent(rt, stored)
        else:
            await self._owner(rt, stored)
        return None

    async def _dependent(self, rt: ResourceType, stored: StoredObject) -> None:
        obj = loads(stored.data)
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if isinstance(r, dict)]
        solid, dangling, waiting = [], [], []
        for ref in refs:
            owner = self._objects.get(str(ref.get("uid")))
            if owner is None:
                dangling.append(ref)
                continue
            if owner[1]:
                owner_obj = await self._rest.store.get(*owner[0])
                if owner_obj is not None and "foregroundDeletion" in _finalizers(owner_obj):
                    waiting.append(ref)
                    continue
            solid.append(ref)
        if solid:
            if dangling or waiting:
                await self._patch(
                    rt,
                    stored,
                    {"metadata": {"ownerReferences": solid, "resourceVersion": str(stored.rv)}},
                )
            return
        if not dangling and not waiting:
            return
        if stored.deleting:
            return
        policy = "Foreground" if waiting and stored.uid in self._dependents else "Background"
        try:
            await self._rest.delete(
                rt,
                stored.namespace,
                stored.name,
                DeleteOptions(propagation_policy=policy, precondition_uid=stored.uid),
                self._ctx,
            )
        except StatusError as error:
            if error.code != 404:
                raise

    async def _owner(self, rt: ResourceType, stored: StoredObject) -> None:
        finalizers = _finalizers(stored)
        dependents = list(self._dependents.get(stored.uid, ()))
        if "orphan" in finalizers:
            for dep_key in dependents:
                dep_rt = self._type(dep_key[0])
                dep = await self._rest.store.get(*dep_key)
                if dep_rt is None or dep is None:
                    continue
                refs = [
                    r
                    for r in loads(dep.data)["metadata"].get("ownerReferences") or []
                    if r.get("uid") != stored.uid
                ]
                await self._patch(
                    dep_rt,
                    dep,
                    {"metadata": {"ownerReferences": refs or None, "resourceVersion": str(dep.rv)}},
                )
            await self._drop_finalizer(rt, stored, finalizers, "orphan")
            return
        if "foregroundDeletion" not in finalizers:
            return
        blocking = 0
        for dep_key in dependents:
            dep_rt = self._type(dep_key[0])
            dep = await self._rest.store.get(*dep_key)
            if dep_rt is None or dep is None:
                continue
            refs = loads(dep.data)["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == stored.uid and r.get("blockOwnerDeletion") for r in refs):
                blocking += 1
            if not dep.deleting:
                policy = "Foreground" if dep.uid in self._dependents else "Background"
                try:
                    await self._rest.delete(
                        dep_rt,
                        dep.namespace,
                        dep.name,
                        DeleteOptions(propagation_policy=policy, precondition_uid=dep.uid),
                        self._ctx,
                    )
                except StatusError as error:
                    if error.code not in (404, 409):
                        raise
        if blocking == 0:
            await self._drop_finalizer(rt, stored, finalizers, "foregroundDeletion")

    async def _drop_finalizer(
        self, rt: ResourceType, stored: StoredObject, finalizers: list[str], finalizer: str
    ) -> None:
        remaining = [f for f in finalizers if f != finalizer]
        await self._patch(
            rt,
            stored,
            {"metadata": {"finalizers": remaining or None, "resourceVersion": str(stored.rv)}},
        )

    async def _patch(self, rt: ResourceType, stored: StoredObject, patch: Any) -> Obj | None:
        try:
            await self._rest.patch(
                rt,
                stored.namespace,
                stored.name,
                _MERGE,
                patch,
                options=WriteOptions(field_validation="Ignore"),
                ctx=self._ctx,
            )
        except StatusError as error:
            if error.code == 404:
                return None
            raise
        return None
