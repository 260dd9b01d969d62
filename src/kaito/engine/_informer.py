"""Engine layer: informers keep a local cache of one resource in step with the API server.

An :class:`Informer` lists, then watches from the list's resourceVersion (with bookmarks),
applies each event to its :class:`~kaito.engine._store.Store` and tells its handlers. A watch
that ends is resumed from the last resourceVersion seen, once the server has confirmed that it
has reached that version (a one-item LIST at it). A resume the server cannot make triggers a
fresh list, whose differences with the cache are delivered as adds, updates and deletes: 410
Gone (the version is too old), "too large resource version" (the server's storage was restored
to an earlier point, so it is behind the version: a plain watch would wait silently until the
store caught up) and any other refusal that retrying cannot change (400, 403, 404, ...).
Transient errors (429, 5xx, connection failures) back off with jitter (``Retry-After`` is
honoured) and never stop the informer; while they last, :attr:`Informer.failure` says why.
:class:`InformerFactory` shares one informer per resource, namespace and selector.
"""

from __future__ import annotations

import builtins
import random
from collections.abc import Callable, Hashable
from typing import Any

import anyio
import structlog

from kaito.engine._backoff import Backoff
from kaito.engine._client import ListWatcher, WatchEvent
from kaito.engine._clock import Clock, MonotonicClock
from kaito.engine._errors import ApiError
from kaito.engine._handlers import EventHandler
from kaito.engine._keys import ObjectKey
from kaito.engine._resources import Resource
from kaito.engine._store import OWNER_INDEX, IndexFunc, Store, index_by_owner_uid, key_of

__all__ = ("Informer", "InformerFactory")

JSON = dict[str, Any]
log = structlog.get_logger("kaito.engine._informer")

#: client-go's minimum watch timeout; each watch asks for a random 1x..2x of it.
MIN_WATCH_TIMEOUT = 300
#: A watch that ends sooner than this with no events counts as a failure (client-go).
SHORT_WATCH = 1.0


class Informer:
    """A shared, self-healing list+watch cache of one resource.

    ``run`` runs until cancelled. ``has_synced`` turns true once the first list is in the
    store and its adds were delivered, and stays true. :attr:`failure` is set while listing or
    watching fails and cleared once a list succeeds or a watch is open again. Handlers added
    later first receive an add for every cached object.

    ``stats`` counts ``lists`` (``relists`` of them after the first), ``resume_checks``,
    ``watches``, ``events`` and ``handler_errors``.
    """

    def __init__(
        self,
        client: ListWatcher,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resync_period: float | None = None,
        page_size: int = 500,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.clock = clock or MonotonicClock()
        self.backoff = backoff or Backoff(rng=rng)
        self.store = Store()
        self.resource_version: str | None = None
        self._rng = rng or random.Random()
        self._handlers: list[EventHandler] = []
        self._want_old = False
        self._synced = anyio.Event()
        self._resuming = False
        self._forced_relists = 0
        self._failure: str | None = None
        self._log = log.bind(resource=str(resource), namespace=namespace or "")
        self.stats = {
            "lists": 0,
            "relists": 0,
            "resume_checks": 0,
            "watches": 0,
            "events": 0,
            "handler_errors": 0,
        }

    # -- wiring ---------------------------------------------------------------------------

    def add_handler(self, handler: EventHandler) -> None:
        """Subscribe ``handler``; if the cache is already filled, replay it as adds."""
        self._handlers.append(handler)
        self._want_old = any(getattr(h, "needs_old", True) for h in self._handlers)
        for _, obj in self.store.items():
            self._call(handler.on_add, obj)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add a named index to the store (idempotent for the built-in owner index)."""
        if name == OWNER_INDEX and name in self.store.index_names:
            return
        self.store.add_indexer(name, func)

    @property
    def has_synced(self) -> bool:
        """Return whether the first list has been stored and delivered."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait until :attr:`has_synced`."""
        await self._synced.wait()

    @property
    def failure(self) -> str | None:
        """Return why listing or watching fails (``"503 ServiceUnavailable"``,
        ``"ClientConnectorError"``...), or ``None`` once a list succeeded or a watch is open."""
        return self._failure

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled; errors are logged and retried with backoff."""
        async with anyio.create_task_group() as tg:
            if self.resync_period:
                tg.start_soon(self._resync_loop, self.resync_period)
            await self._list_and_watch_forever()

    async def _list_and_watch_forever(self) -> None:
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                elif self._resuming:
                    await self._check_resume()
                await self._watch()
            except ApiError as err:
                self._failure = f"{err.status} {err.reason}".strip()
                if not err.retriable:
                    self._relist_later(err)
                    if self._forced_relists == 1:  # the server says what to do: at once
                        continue
                delay = self.backoff.next_delay()
                if err.retry_after is not None and err.retriable:
                    delay = max(delay, err.retry_after)
                self._log.warning(
                    "list_watch_failed", status=err.status, reason=err.reason, retry_in=delay
                )
                await self.clock.sleep(delay)
            except Exception as exc:
                self._failure = type(exc).__name__
                delay = self.backoff.next_delay()
                self._log.warning(
                    "list_watch_failed", error=repr(exc), error_type=type(exc).__name__,
                    retry_in=delay,
                )  # fmt: skip
                await self.clock.sleep(delay)

    def _relist_later(self, err: ApiError) -> None:
        """Forget the resourceVersion the server refused; the next pass lists afresh.

        The first forced relist since the last watch event happens at once; more in a row (a
        server that keeps refusing) wait out the backoff like any failure.
        """
        if err.gone:
            cause = "expired"
        elif err.too_large_resource_version:
            cause = "resource_version_too_large"
        else:
            cause = "refused"
        self._log.info(
            "informer_relisting",
            cause=cause,
            status=err.status,
            reason=err.reason,
            resource_version=self.resource_version,
        )
        self.resource_version = None
        self._forced_relists += 1

    async def _check_resume(self) -> None:
        """Ask for one item at the version to resume from: a server that has not reached it
        (its storage was restored) refuses it, where a watch would just wait silently."""
        self.stats["resume_checks"] += 1
        await self.client.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            limit=1,
            resource_version=self.resource_version,
        )

    async def _list(self) -> None:
        self.stats["lists"] += 1
        items: list[JSON] = []
        token: str | None = None
        while True:
            try:
                page = await self.client.list(
                    self.resource,
                    namespace=self.namespace,
                    label_selector=self.label_selector,
                    limit=self.page_size,
                    continue_token=token,
                )
            except ApiError as err:
                if err.gone and token is not None:
                    # The continue token expired mid-way: start over with one full list.
                    items, token = [], None
                    page = await self.client.list(
                        self.resource, namespace=self.namespace, label_selector=self.label_selector
                    )
                else:
                    raise
            items.extend(page.items)
            token = page.continue_token
            if not token:
                break
        self._replace(items)
        self.resource_version = page.resource_version
        self._resuming = False
        self._failure = None
        self.backoff.reset()
        if self.stats["lists"] > 1:
            self.stats["relists"] += 1
        self._log.debug("listed", count=len(items), resource_version=self.resource_version)
        self._synced.set()

    async def _watch(self) -> None:
        self.stats["watches"] += 1
        timeout = int(MIN_WATCH_TIMEOUT * (1.0 + self._rng.random()))
        started = self.clock.now()
        events = 0
        try:
            async with self.client.watch(
                self.resource,
                namespace=self.namespace,
                label_selector=self.label_selector,
                resource_version=self.resource_version,
                timeout_seconds=timeout,
            ) as stream:
                self._failure = None
                async for event in stream:
                    events += 1
                    self._apply(event)
                    if events == 1:
                        self.backoff.reset()
                        self._forced_relists = 0
        finally:
            self._resuming = True
        if events == 0 and self.clock.now() - started < SHORT_WATCH:
            raise ApiError(0, "ShortWatch", "the watch ended at once with no events")

    async def _resync_loop(self, period: float) -> None:
        while True:
            await self.clock.sleep(period)
            if not self.has_synced:
                continue
            for _, obj in self.store.items():
                for handler in self._handlers:
                    self._call(handler.on_update, obj, obj)

    # -- applying -------------------------------------------------------------------------

    def _apply(self, event: WatchEvent) -> None:
        self.stats["events"] += 1
        obj = event.object
        kind = event.type
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = key_of(obj)
        if kind == "DELETED":
            last = self.store.delete(key)
            for handler in self._handlers:
                self._call(handler.on_delete, last if last is not None else obj)
        elif kind in ("ADDED", "MODIFIED"):
            old = self.store.upsert(obj, key, event.raw, want_old=self._want_old)
            if old is None:
                for handler in self._handlers:
                    self._call(handler.on_add, obj)
            else:
                previous = old if isinstance(old, dict) else obj
                for handler in self._handlers:
                    self._call(handler.on_update, previous, obj)
        else:
            self._log.warning("watch_event_unknown", type=kind)
            return
        if rv:
            self.resource_version = rv

    def _replace(self, items: list[JSON]) -> None:
        seen: set[ObjectKey] = set()
        for obj in items:
            key = key_of(obj)
            seen.add(key)
            old = self.store.upsert(obj, key, want_old=self._want_old)
            previous = old if isinstance(old, dict) else obj
            for handler in self._handlers:
                if old is None:
                    self._call(handler.on_add, obj)
                else:
                    self._call(handler.on_update, previous, obj)
        for key in [k for k in self.store if k not in seen]:
            gone = self.store.delete(key)
            if gone is not None:
                for handler in self._handlers:
                    self._call(handler.on_delete, gone)

    def _call(self, func: Callable[..., None], *args: JSON) -> None:
        try:
            func(*args)
        except Exception:
            self.stats["handler_errors"] += 1
            obj = args[-1]
            self._log.exception("event_handler_failed", key=str(key_of(obj)))


class InformerFactory:
    """Hands out one shared :class:`Informer` per (resource, namespace, label selector).

    ``run`` runs every informer handed out, including ones requested after it started.
    Cached reads go through :meth:`get`, :meth:`list` and :meth:`by_index`.
    """

    def __init__(
        self,
        client: ListWatcher,
        *,
        resync_period: float | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.resync_period = resync_period
        self.clock = clock or MonotonicClock()
        self._rng = rng
        self._informers: dict[Hashable, Informer] = {}
        self._task_group: anyio.abc.TaskGroup | None = None

    def informer(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> Informer:
        """Return the shared informer for this scope, creating (and starting) it if needed."""
        ident = (resource, namespace, label_selector)
        informer = self._informers.get(ident)
        if informer is None:
            informer = Informer(
                self.client,
                resource,
                namespace=namespace,
                label_selector=label_selector,
                resync_period=self.resync_period,
                clock=self.clock,
                rng=self._rng,
            )
            self._informers[ident] = informer
            if self._task_group is not None:
                self._task_group.start_soon(informer.run, name=f"informer {resource}")
        return informer

    @property
    def informers(self) -> list[Informer]:
        """Return every informer handed out so far."""
        return list(self._informers.values())

    @property
    def has_synced(self) -> bool:
        """Return whether every informer has synced."""
        return all(informer.has_synced for informer in self._informers.values())

    @property
    def failures(self) -> dict[str, str]:
        """Return ``resource -> why`` for every informer whose list or watch is failing now."""
        return {
            str(informer.resource): informer.failure
            for informer in self._informers.values()
            if informer.failure is not None
        }

    async def wait_synced(self) -> None:
        """Wait until every informer handed out so far has synced."""
        for informer in list(self._informers.values()):
            await informer.wait_synced()

    async def run(self) -> None:
        """Run all informers until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                for informer in self._informers.values():
                    tg.start_soon(informer.run, name=f"informer {informer.resource}")
                await anyio.sleep_forever()
        finally:
            self._task_group = None

    # -- cached reads ---------------------------------------------------------------------

    def get(self, resource: Resource, key: ObjectKey) -> JSON | None:
        """Return a fresh copy of ``key`` from the cluster-wide informer of ``resource``."""
        return self.informer(resource).store.get(key)

    def list(self, resource: Resource, namespace: str | None = None) -> list[JSON]:
        """Return fresh copies of the cached objects of ``resource`` (in one namespace)."""
        return self.informer(resource).store.list(namespace)

    def by_index(self, resource: Resource, index: str, value: str) -> builtins.list[JSON]:
        """Return cached objects of ``resource`` under ``value`` in the index ``index``.

        ``index`` is ``namespace``, ``owner`` (owner UIDs; added on first use) or a name given
        to :meth:`Informer.add_indexer`.
        """
        informer = self.informer(resource)
        if index == OWNER_INDEX:
            informer.add_indexer(OWNER_INDEX, index_by_owner_uid)
        return informer.store.by_index(index, value)
