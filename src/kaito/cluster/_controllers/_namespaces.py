"""Namespace lifecycle: empty a terminating namespace, then release its ``kubernetes`` finalizer;
and give every active namespace its ``default`` ServiceAccount."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kaito.cluster._errors import StatusError
from kaito.cluster._json import loads
from kaito.cluster._meta import format_time
from kaito.cluster._rest import DeleteOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._store import EventType, GroupResource, StorageEvent

__all__ = ("NamespaceController", "ServiceAccountController")

NAMESPACES = GroupResource("", "namespaces")
SERVICE_ACCOUNTS = GroupResource("", "serviceaccounts")


class NamespaceController:
    """ControlLoop keyed by namespace name."""

    name = "namespace"

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        self._ctx = RequestContext(user="system:serviceaccount:kube-system:namespace-controller")
        self._terminating: set[str] = set()

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        stored = event.obj
        if gr == NAMESPACES:
            if event.type is EventType.DELETED:
                self._terminating.discard(stored.name)
                return ()
            if stored.deleting:
                self._terminating.add(stored.name)
                return (stored.name,)
            return ()
        if stored.namespace in self._terminating and (
            event.type is EventType.DELETED or stored.deleting
        ):
            return (stored.namespace,)
        return ()

    async def initial_keys(self) -> Iterable[Hashable]:
        snapshot = await self._rest.store.list(NAMESPACES, None)
        names = [s.name for s in snapshot.items if s.deleting]
        self._terminating.update(names)
        return names

    async def reconcile(self, key: Hashable) -> float | None:
        name = str(key)
        stored = await self._rest.store.get(NAMESPACES, "", name)
        if stored is None or not stored.deleting:
            return None
        remaining = 0
        finalizers: set[str] = set()
        for rt in list(self._rest.catalog):
            if (
                not rt.namespaced
                or rt.version != (rt.storage_version or rt.version)
                or rt.bucket is not None
            ):
                continue
            snapshot = await self._rest.store.list(rt.gr, name)
            for item in snapshot.items:
                remaining += 1
                if item.deleting:
                    finalizers.update(loads(item.data)["metadata"].get("finalizers") or [])
                    continue
                try:
                    await self._rest.delete(
                        rt,
                        name,
                        item.name,
                        DeleteOptions(propagation_policy="Background"),
                        self._ctx,
                    )
                except StatusError as error:
                    if error.code not in (404, 409):
                        raise
        if remaining:
            await self._report(name, remaining, finalizers)
            return 1.0
        await self._rest.finalize_namespace(name, [], self._ctx)
        return None

    async def _report(self, name: str, remaining: int, finalizers: set[str]) -> None:
        rt = self._rest.catalog.lookup("", "v1", "namespaces")
        if rt is None:
            return
        now = format_time(self._rest.clock())
        conditions = [
            {
                "type": "NamespaceContentRemaining",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "SomeResourcesRemain",
                "message": f"Some resources are remaining: {remaining} objects",
            },
        ]
        if finalizers:
            conditions.append(
                {
                    "type": "NamespaceFinalizersRemaining",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "SomeFinalizersRemain",
                    "message": "Some content in the namespace has finalizers remaining: "
                    + ", ".join(sorted(finalizers)),
                }
            )
        try:
            await self._rest.patch(
                rt,
                "",
                name,
                "application/merge-patch+json",
                {"status": {"phase": "Terminating", "conditions": conditions}},
                options=WriteOptions(),
                ctx=self._ctx,
                subresource="status",
            )
        except StatusError as error:
            if error.code != 404:
                raise


class ServiceAccountController:
    """Creates the ``default`` ServiceAccount in every active namespace."""

    name = "serviceaccount"

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        self._ctx = RequestContext(
            user="system:serviceaccount:kube-system:service-account-controller"
        )

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == NAMESPACES and event.type is EventType.ADDED:
            return (event.obj.name,)
        if (
            gr == SERVICE_ACCOUNTS
            and event.type is EventType.DELETED
            and event.obj.name == "default"
        ):
            return (event.obj.namespace,)
        return ()

    async def initial_keys(self) -> Iterable[Hashable]:
        return [s.name for s in (await self._rest.store.list(NAMESPACES, None)).items]

    async def reconcile(self, key: Hashable) -> float | None:
        namespace = str(key)
        ns = await self._rest.store.get(NAMESPACES, "", namespace)
        if ns is None or ns.deleting:
            return None
        if await self._rest.store.get(SERVICE_ACCOUNTS, namespace, "default") is not None:
            return None
        rt = self._rest.catalog.lookup("", "v1", "serviceaccounts")
        if rt is None:
            return None
        try:
            await self._rest.create(
                rt,
                namespace,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
                WriteOptions(),
                self._ctx,
            )
        except StatusError as error:
            if error.code not in (403, 404, 409):
                raise
        return None
