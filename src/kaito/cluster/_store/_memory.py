"""The embedded in-memory store: compact JSON bytes per object, a history window per bucket."""

from __future__ import annotations

import bisect
import builtins
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import structlog

from kaito.cluster._json import dumps_compact
from kaito.cluster._store._base import (
    ConflictError,
    EventType,
    ExpiredError,
    GroupResource,
    KeyExistsError,
    KeyNotFoundError,
    ObjectIndex,
    Snapshot,
    StorageBackup,
    StorageEvent,
    StoredObject,
    StoreListener,
    TooLargeResourceVersionError,
)

__all__ = ("MemoryStorage",)

log = structlog.get_logger(__name__)


class _MemoryWatch:
    """A watcher's buffer, filled synchronously by commits and drained by ``next_batch``."""

    __slots__ = ("_bucket", "_buffer", "_ended", "_limit", "_wakeup", "namespace")

    def __init__(self, bucket: _Bucket, namespace: str | None, limit: int) -> None:
        self._bucket = bucket
        self.namespace = namespace
        self._buffer: list[StorageEvent] = []
        self._wakeup = anyio.Event()
        self._ended = False
        self._limit = limit

    def push(self, event: StorageEvent) -> None:
        if self._ended:
            return
        self._buffer.append(event)
        if len(self._buffer) > self._limit:
            log.warning("watch_terminated_slow_consumer", buffered=len(self._buffer))
            self.close()
            return
        if len(self._buffer) == 1:
            self._wakeup.set()

    async def next_batch(self) -> builtins.list[StorageEvent] | None:
        while not self._buffer:
            if self._ended:
                return None
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
        batch, self._buffer = self._buffer, []
        return batch

    def close(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._buffer = []
        self._bucket.watchers.discard(self)
        self._wakeup.set()


class _Bucket:
    __slots__ = ("floor", "history", "history_bytes", "objects", "sorted_keys", "watchers")

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.sorted_keys: list[str] | None = None
        self.history: deque[StorageEvent] = deque()
        self.history_bytes = 0
        self.floor = 0
        self.watchers: set[_MemoryWatch] = set()


class MemoryStorage:
    """The default :class:`~kaito.cluster.Storage`: everything in process memory.

    Each object is kept once as JSON bytes; the history window keeps references to the same
    versions, so an update costs one new bytes object. The window holds at most
    ``history_window`` events and ``history_bytes`` bytes per resource (older events are forgotten
    and watches from before them get 410 Expired, as after an etcd compaction), so deleted and
    overwritten objects cannot hold memory without bound. Watchers whose buffers pass
    ``watch_buffer_limit`` events are terminated, as kube-apiserver ends slow watchers.
    """

    def __init__(
        self,
        *,
        history_window: int = 10_000,
        history_bytes: int = 32 * 1024 * 1024,
        watch_buffer_limit: int = 1_000_000,
    ) -> None:
        if history_window < 1:
            raise ValueError(f"history_window={history_window} must be at least 1")
        self._window = history_window
        self._history_bytes = history_bytes
        self._watch_limit = watch_buffer_limit
        self._rv = 1
        self._compacted = 0
        self._buckets: dict[GroupResource, _Bucket] = {}
        self._listeners: list[StoreListener] = []

    @classmethod
    def restore(
        cls,
        backup: StorageBackup,
        *,
        history_window: int = 10_000,
        watch_buffer_limit: int = 1_000_000,
    ) -> MemoryStorage:
        """A store holding exactly what ``backup`` holds, at its resource version.

        The next write gets ``backup.rv + 1`` again, so clients that saw versions handed out
        after the backup now hold versions this store has not reached (a restored etcd). No
        history comes back: versions below ``backup.rv`` are compacted (410).
        """
        store = cls(history_window=history_window, watch_buffer_limit=watch_buffer_limit)
        store._rv = backup.rv
        store._compacted = backup.rv
        for gr, items in backup.buckets.items():
            if items:
                bucket = store._bucket(gr)
                bucket.objects = {f"{o.namespace}/{o.name}": o for o in items}
        return store

    def backup(self) -> StorageBackup:
        buckets = {}
        for gr, bucket in self._buckets.items():
            if bucket.objects:
                buckets[gr] = tuple(bucket.objects[key] for key in sorted(bucket.objects))
        return StorageBackup(self._rv, buckets)

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_version(self) -> int:
        return self._compacted

    def _bucket(self, gr: GroupResource) -> _Bucket:
        bucket = self._buckets.get(gr)
        if bucket is None:
            bucket = self._buckets[gr] = _Bucket()
        return bucket

    async def get(self, gr: GroupResource, namespace: str, name: str) -> StoredObject | None:
        bucket = self._buckets.get(gr)
        if bucket is None:
            return None
        return bucket.objects.get(f"{namespace}/{name}")

    async def list(self, gr: GroupResource, namespace: str | None) -> Snapshot:
        bucket = self._buckets.get(gr)
        if bucket is None or not bucket.objects:
            return Snapshot(self._rv, ())
        keys = bucket.sorted_keys
        if keys is None:
            keys = bucket.sorted_keys = sorted(bucket.objects)
        objects = bucket.objects
        if namespace is None:
            return Snapshot(self._rv, [objects[k] for k in keys])
        prefix = namespace + "/"
        start = bisect.bisect_left(keys, prefix)
        items = []
        for key in keys[start:]:
            if not key.startswith(prefix):
                break
            items.append(objects[key])
        return Snapshot(self._rv, items)

    def _commit(
        self,
        gr: GroupResource,
        bucket: _Bucket,
        type: EventType,
        obj: dict[str, Any],
        *,
        index: ObjectIndex,
        prev: StoredObject | None,
    ) -> StoredObject:
        rv = self._rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = StoredObject(dumps_compact(obj), rv, index)
        self._rv = rv
        key = f"{index.namespace}/{index.name}"
        if type is EventType.DELETED:
            del bucket.objects[key]
            bucket.sorted_keys = None
        else:
            if type is EventType.ADDED:
                bucket.sorted_keys = None
            bucket.objects[key] = stored
        event = StorageEvent(type, stored, prev)
        history = bucket.history
        history.append(event)
        bucket.history_bytes += len(stored.data)
        while len(history) > self._window or (
            bucket.history_bytes > self._history_bytes and len(history) > 1
        ):
            forgotten = history.popleft()
            bucket.floor = forgotten.obj.rv
            bucket.history_bytes -= len(forgotten.obj.data)
        for watcher in tuple(bucket.watchers):
            if watcher.namespace is None or watcher.namespace == index.namespace:
                watcher.push(event)
        for listener in tuple(self._listeners):
            try:
                listener(gr, event)
            except Exception:
                log.exception("store_listener_failed", resource=str(gr))
        return stored

    async def create(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex
    ) -> StoredObject:
        bucket = self._bucket(gr)
        existing = bucket.objects.get(f"{index.namespace}/{index.name}")
        if existing is not None:
            raise KeyExistsError(existing)
        return self._commit(gr, bucket, EventType.ADDED, obj, index=index, prev=None)

    def _current(
        self, gr: GroupResource, index: ObjectIndex, expected_rv: int
    ) -> tuple[_Bucket, StoredObject]:
        bucket = self._buckets.get(gr)
        current = bucket.objects.get(f"{index.namespace}/{index.name}") if bucket else None
        if bucket is None or current is None:
            raise KeyNotFoundError(f"{index.namespace}/{index.name}")
        if current.rv != expected_rv:
            raise ConflictError(current)
        return bucket, current

    async def update(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        bucket, current = self._current(gr, index, expected_rv)
        return self._commit(gr, bucket, EventType.MODIFIED, obj, index=index, prev=current)

    async def delete(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        bucket, current = self._current(gr, index, expected_rv)
        return self._commit(gr, bucket, EventType.DELETED, obj, index=index, prev=current)

    def watch(self, gr: GroupResource, namespace: str | None, since_rv: int) -> _MemoryWatch:
        if since_rv > self._rv:
            raise TooLargeResourceVersionError(since_rv, self._rv)
        bucket = self._bucket(gr)
        oldest = max(bucket.floor, self._compacted)
        if since_rv < oldest:
            raise ExpiredError(since_rv, oldest)
        watcher = _MemoryWatch(bucket, namespace, self._watch_limit)
        replay: list[StorageEvent] = []
        for event in reversed(bucket.history):
            if event.obj.rv <= since_rv:
                break
            if namespace is None or event.obj.namespace == namespace:
                replay.append(event)
        for event in reversed(replay):
            watcher.push(event)
        bucket.watchers.add(watcher)
        return watcher

    def add_listener(self, listener: StoreListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def buckets(self) -> builtins.list[GroupResource]:
        return sorted(self._buckets)

    async def compact(self, rv: int | None = None) -> int:
        target = self._rv if rv is None else min(rv, self._rv)
        self._compacted = max(self._compacted, target)
        for bucket in self._buckets.values():
            while bucket.history and bucket.history[0].obj.rv <= self._compacted:
                bucket.history_bytes -= len(bucket.history.popleft().obj.data)
        return self._compacted

    def terminate_watches(self, gr: GroupResource | None = None) -> int:
        buckets = (
            [self._buckets[gr]]
            if gr is not None and gr in self._buckets
            else ([] if gr is not None else list(self._buckets.values()))
        )
        ended = 0
        for bucket in buckets:
            for watcher in tuple(bucket.watchers):
                watcher.close()
                ended += 1
        return ended
