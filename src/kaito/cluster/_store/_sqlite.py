"""A durable store: the in-memory store's semantics, every commit written to SQLite first.

What kine's SQLite backend is to k3s: the cluster's objects, its resource version and a window
of history live in one SQLite file (standard library ``sqlite3``, WAL journal), so a cluster
started again on the same file resumes where it was: same objects, resource versions that keep
increasing, watches that resume from versions still in the window (older ones get 410, as after
an etcd compaction). Reads and watches are served from memory; each write is committed to the
file (in a worker thread, one write at a time, in commit order) before it is applied in memory
and announced to watchers, so nothing a client was told about is lost when the process stops.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import structlog

from kaito.cluster._json import dumps_compact
from kaito.cluster._store._base import (
    ConflictError,
    EventType,
    GroupResource,
    KeyExistsError,
    KeyNotFoundError,
    ObjectIndex,
    StorageEvent,
    StoredObject,
)
from kaito.cluster._store._memory import MemoryStorage, _Bucket

__all__ = ("SqliteStorage",)

log = structlog.get_logger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data BLOB NOT NULL, idx TEXT NOT NULL,
    PRIMARY KEY (grp, resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY, grp TEXT NOT NULL, resource TEXT NOT NULL, type TEXT NOT NULL,
    data BLOB NOT NULL, idx TEXT NOT NULL, prev_rv INTEGER, prev_data BLOB, prev_idx TEXT
);
"""
_SCHEMA_VERSION: Final = 1
#: Trim the persisted history every this many writes.
_TRIM_EVERY: Final = 512


def _index_json(index: ObjectIndex) -> str:
    return json.dumps(
        [
            index.namespace,
            index.name,
            index.uid,
            dict(index.labels),
            list(index.fields),
            list(index.owners),
            index.deleting,
        ],
        separators=(",", ":"),
    )


def _stored(data: bytes, rv: int, idx: str) -> StoredObject:
    namespace, name, uid, labels, fields, owners, deleting = json.loads(idx)
    index = ObjectIndex(namespace, name, uid, labels, tuple(fields), tuple(owners), deleting)
    return StoredObject(bytes(data), rv, index)


class _Database:
    """The SQLite file; every method runs in a worker thread, one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        version = self.meta("schema")
        if version is None:
            self._set_meta({"schema": _SCHEMA_VERSION})
        elif version != _SCHEMA_VERSION:
            raise ValueError(
                f"{path} was written by a store of schema {version}; this one reads "
                f"{_SCHEMA_VERSION}: use another data directory"
            )

    def meta(self, key: str) -> int | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, values: dict[str, int]) -> None:
        self._conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def load(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        objects = self._conn.execute(
            "SELECT grp, resource, rv, data, idx FROM objects ORDER BY grp, resource"
        ).fetchall()
        events = self._conn.execute(
            "SELECT rv, grp, resource, type, data, idx, prev_rv, prev_data, prev_idx "
            "FROM events ORDER BY rv"
        ).fetchall()
        return objects, events

    def commit(
        self,
        gr: GroupResource,
        type: EventType,
        stored: StoredObject,
        prev: StoredObject | None,
    ) -> None:
        idx = _index_json(_index_of(stored))
        prev_idx = _index_json(_index_of(prev)) if prev is not None else None
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                key = (gr.group, gr.resource, stored.namespace, stored.name)
                if type is EventType.DELETED:
                    conn.execute(
                        "DELETE FROM objects WHERE grp = ? AND resource = ? AND namespace = ? "
                        "AND name = ?",
                        key,
                    )
                else:
                    conn.execute(
                        "INSERT INTO objects (grp, resource, namespace, name, rv, data, idx) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(grp, resource, namespace, name) "
                        "DO UPDATE SET rv = excluded.rv, data = excluded.data, idx = excluded.idx",
                        (*key, stored.rv, stored.data, idx),
                    )
                conn.execute(
                    "INSERT INTO events (rv, grp, resource, type, data, idx, prev_rv, prev_data, "
                    "prev_idx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        stored.rv,
                        gr.group,
                        gr.resource,
                        str(type),
                        stored.data,
                        idx,
                        prev.rv if prev else None,
                        prev.data if prev else None,
                        prev_idx,
                    ),
                )
                self._set_meta({"rv": stored.rv})
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def compact(self, rv: int) -> None:
        """Forget the history at or below ``rv``."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM events WHERE rv <= ?", (rv,))
            self._set_meta({"compacted": max(rv, self.meta("compacted") or 0)})
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SqliteStorage(MemoryStorage):
    """A :class:`~kaito.cluster.Storage` kept in a SQLite file (``kaito up --data-dir``).

    Open it with :meth:`open` (it loads what the file holds) and :meth:`close` it after the
    cluster stopped. The persisted history keeps about ``history_window`` events; a watch from
    an older version gets 410 after a restart, as after an etcd compaction.
    """

    def __init__(
        self, path: Path, *, history_window: int = 10_000, watch_buffer_limit: int = 1_000_000
    ) -> None:
        super().__init__(history_window=history_window, watch_buffer_limit=watch_buffer_limit)
        self.path = path
        self._db: _Database | None = None
        self._write_lock = anyio.Lock()
        self._writes = 0

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        history_window: int = 10_000,
        watch_buffer_limit: int = 1_000_000,
    ) -> SqliteStorage:
        """Open (or create) the store in ``path`` and load its objects and history.

        Raises:
            sqlite3.DatabaseError: the file is not a store's.
            ValueError: the file was written by an incompatible store.
        """
        store = cls(
            Path(path), history_window=history_window, watch_buffer_limit=watch_buffer_limit
        )
        await anyio.to_thread.run_sync(store._load)
        return store

    def _load(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = db = _Database(self.path)
        objects, events = db.load()
        count = 0
        for group, resource, rv, data, idx in objects:
            stored = _stored(data, rv, idx)
            self._bucket(GroupResource(group, resource)).objects[
                f"{stored.namespace}/{stored.name}"
            ] = stored
            count += 1
        for rv, group, resource, type_, data, idx, prev_rv, prev_data, prev_idx in events:
            bucket = self._bucket(GroupResource(group, resource))
            prev = _stored(prev_data, prev_rv, prev_idx) if prev_data is not None else None
            event = StorageEvent(EventType(type_), _stored(data, rv, idx), prev)
            if len(bucket.history) == bucket.history.maxlen:
                bucket.floor = bucket.history[0].obj.rv
            bucket.history.append(event)
        self._rv = max(db.meta("rv") or 1, self._rv)
        self._compacted = db.meta("compacted") or 0
        if events:
            # History before the oldest kept event is gone.
            self._compacted = max(self._compacted, int(events[0][0]) - 1)
        log.info(
            "sqlite_store_opened",
            path=str(self.path),
            objects=count,
            history=len(events),
            resource_version=self._rv,
        )

    async def close(self) -> None:
        """Close the file (idempotent). Writes after this fail."""
        async with self._write_lock:
            db, self._db = self._db, None
            if db is not None:
                await anyio.to_thread.run_sync(db.close)

    def _database(self) -> _Database:
        if self._db is None:
            raise RuntimeError(f"the store {self.path} is closed (or was never opened)")
        return self._db

    async def _persist(
        self,
        gr: GroupResource,
        type: EventType,
        obj: dict[str, Any],
        index: ObjectIndex,
        prev: StoredObject | None,
    ) -> None:
        """Write the commit the in-memory store is about to make (same version, same bytes)."""
        db = self._database()
        rv = self._rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = StoredObject(dumps_compact(obj), rv, index)
        await anyio.to_thread.run_sync(db.commit, gr, type, stored, prev)
        self._writes += 1
        if self._writes % _TRIM_EVERY == 0:
            floor = rv - self._window
            if floor > 0:
                await anyio.to_thread.run_sync(db.compact, floor)

    def _current_or_raise(
        self, gr: GroupResource, index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        bucket = self._buckets.get(gr)
        current = bucket.objects.get(f"{index.namespace}/{index.name}") if bucket else None
        if current is None:
            raise KeyNotFoundError(f"{index.namespace}/{index.name}")
        if current.rv != expected_rv:
            raise ConflictError(current)
        return current

    async def create(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex
    ) -> StoredObject:
        async with self._write_lock:
            bucket: _Bucket | None = self._buckets.get(gr)
            existing = bucket.objects.get(f"{index.namespace}/{index.name}") if bucket else None
            if existing is not None:
                raise KeyExistsError(existing)
            await self._persist(gr, EventType.ADDED, obj, index, None)
            return await super().create(gr, obj, index)

    async def update(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        async with self._write_lock:
            current = self._current_or_raise(gr, index, expected_rv)
            await self._persist(gr, EventType.MODIFIED, obj, index, current)
            return await super().update(gr, obj, index, expected_rv)

    async def delete(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        async with self._write_lock:
            current = self._current_or_raise(gr, index, expected_rv)
            await self._persist(gr, EventType.DELETED, obj, index, current)
            return await super().delete(gr, obj, index, expected_rv)

    async def compact(self, rv: int | None = None) -> int:
        async with self._write_lock:
            compacted = await super().compact(rv)
            await anyio.to_thread.run_sync(self._database().compact, compacted)
            return compacted


def _index_of(stored: StoredObject) -> ObjectIndex:
    return ObjectIndex(
        stored.namespace,
        stored.name,
        stored.uid,
        stored.labels,
        stored.fields,
        stored.owners,
        stored.deleting,
    )
