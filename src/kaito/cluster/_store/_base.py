"""The storage Protocol (lowest layer above JSON): versioned objects, history and watches.

A store keeps each object as serialized JSON bytes plus a few index fields, assigns one
cluster-wide, monotonically increasing resource version to every write, refuses writes whose
expected version is stale, and replays the history of a resource from any version still in its
window.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol

import attrs

__all__ = (
    "ConflictError",
    "EventType",
    "ExpiredError",
    "GroupResource",
    "KeyExistsError",
    "KeyNotFoundError",
    "ObjectIndex",
    "Snapshot",
    "Storage",
    "StorageBackup",
    "StorageEvent",
    "StorageWatch",
    "StoreError",
    "StoreListener",
    "StoredObject",
    "TooLargeResourceVersionError",
)


@attrs.frozen(order=True)
class GroupResource:
    """A storage bucket: API group and plural resource name (versions share a bucket)."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


_NO_LABELS: Mapping[str, str] = {}


@attrs.frozen
class ObjectIndex:
    """The fields a store indexes next to the serialized object."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str] = _NO_LABELS
    fields: tuple[str, ...] = ()
    """Values of the kind's extra selectable fields, in the kind's declared order."""
    owners: tuple[str, ...] = ()
    """UIDs named by ``metadata.ownerReferences``."""
    deleting: bool = False
    """``metadata.deletionTimestamp`` is set."""


class StoredObject:
    """One stored object version: JSON bytes (``resourceVersion`` included) and its index.

    Instances are immutable by contract and shared between the current state, the history window,
    list snapshots and watchers; nobody copies them.
    """

    __slots__ = ("data", "deleting", "fields", "labels", "name", "namespace", "owners", "rv", "uid")

    def __init__(self, data: bytes, rv: int, index: ObjectIndex) -> None:
        self.data = data
        self.rv = rv
        self.namespace = index.namespace
        self.name = index.name
        self.uid = index.uid
        self.labels = index.labels or _NO_LABELS
        self.fields = index.fields
        self.owners = index.owners
        self.deleting = index.deleting

    def __repr__(self) -> str:
        return f"StoredObject({self.namespace}/{self.name}@{self.rv})"


class EventType(StrEnum):
    """Watch event types as they appear on the wire."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


class StorageEvent:
    """A committed change: the new object (the last state for ``DELETED``) and the previous one."""

    __slots__ = ("obj", "prev", "type")

    def __init__(self, type: EventType, obj: StoredObject, prev: StoredObject | None) -> None:
        self.type = type
        self.obj = obj
        self.prev = prev

    @property
    def rv(self) -> int:
        """The resource version of the change."""
        return self.obj.rv


@attrs.frozen
class Snapshot:
    """A consistent list: every object of a bucket at resource version ``rv``, in key order."""

    rv: int
    items: Sequence[StoredObject]


@attrs.frozen
class StorageBackup:
    """Every object a store held at resource version ``rv``, per bucket, in key order.

    What ``etcdctl snapshot save`` is to etcd: :meth:`Storage.backup` takes one, and a store
    restored from it (:meth:`MemoryStorage.restore <kaito.cluster.MemoryStorage.restore>`)
    starts at ``rv`` again, below any version handed out after the backup was taken. History
    is not kept: watches from versions older than ``rv`` get 410, as after ``etcdutl snapshot
    restore --mark-compacted``.
    """

    rv: int
    buckets: Mapping[GroupResource, Sequence[StoredObject]]


StoreListener = Callable[[GroupResource, StorageEvent], None]
"""Called synchronously after each commit, in commit order (garbage collector, controllers)."""


class StoreError(Exception):
    """Base class of storage failures; the REST layer maps each to an API ``Status``."""


class KeyExistsError(StoreError):
    """Create of a key that already holds an object."""

    def __init__(self, existing: StoredObject) -> None:
        super().__init__(f"{existing.namespace}/{existing.name} exists")
        self.existing = existing


class KeyNotFoundError(StoreError):
    """Update or delete of a key that holds nothing."""


class ConflictError(StoreError):
    """The expected resource version is not the current one."""

    def __init__(self, current: StoredObject) -> None:
        super().__init__(f"{current.namespace}/{current.name} is at {current.rv}")
        self.current = current


class ExpiredError(StoreError):
    """A resource version older than the kept history window (HTTP 410)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class TooLargeResourceVersionError(StoreError):
    """A resource version the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"Too large resource version: {requested}, current: {current}")
        self.requested = requested
        self.current = current


class StorageWatch(Protocol):
    """Protocol: a stream of committed changes of one bucket, after a given version."""

    async def next_batch(self) -> builtins.list[StorageEvent] | None:
        """Wait for the next events, in commit order; ``None`` once the watch has ended."""
        ...

    def close(self) -> None:
        """Stop the watch; idempotent."""
        ...


class Storage(Protocol):
    """Protocol: versioned object storage for the API server.

    Writes set ``metadata.resourceVersion`` in the given object, serialize it and return the
    stored version; they are atomic with respect to each other and to ``list``/``watch``, and
    listeners and watchers observe them in commit order.
    """

    @property
    def resource_version(self) -> int:
        """The version of the latest commit (the cluster-wide ``resourceVersion``)."""
        ...

    @property
    def compacted_version(self) -> int:
        """History at or below this version is gone; older versions get :class:`ExpiredError`."""
        ...

    async def get(self, gr: GroupResource, namespace: str, name: str) -> StoredObject | None:
        """The current version of one object, or ``None``."""
        ...

    async def list(self, gr: GroupResource, namespace: str | None) -> Snapshot:
        """A consistent snapshot of a bucket (one namespace, or all with ``None``)."""
        ...

    async def create(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex
    ) -> StoredObject:
        """Storage a new object. Raises :class:`KeyExistsError`."""
        ...

    async def update(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        """Replace an object at ``expected_rv``.

        Raises :class:`ConflictError` or :class:`KeyNotFoundError`.
        """
        ...

    async def delete(
        self, gr: GroupResource, obj: dict[str, Any], index: ObjectIndex, expected_rv: int
    ) -> StoredObject:
        """Remove an object at ``expected_rv``; ``obj`` is its final state, sent to watchers."""
        ...

    def watch(self, gr: GroupResource, namespace: str | None, since_rv: int) -> StorageWatch:
        """Changes strictly after ``since_rv``.

        Raises :class:`ExpiredError` or :class:`TooLargeResourceVersionError`.
        """
        ...

    def add_listener(self, listener: StoreListener) -> Callable[[], None]:
        """Call ``listener`` after every commit; returns a function that removes it."""
        ...

    def buckets(self) -> builtins.list[GroupResource]:
        """Every bucket that has held objects."""
        ...

    async def compact(self, rv: int | None = None) -> int:
        """Forget history up to ``rv`` (default: everything); returns the compacted version."""
        ...

    def terminate_watches(self, gr: GroupResource | None = None) -> int:
        """End open watches (of one bucket, or all); returns how many were ended."""
        ...

    def backup(self) -> StorageBackup:
        """A consistent copy of every object at the current version (see :class:`StorageBackup`)."""
        ...
