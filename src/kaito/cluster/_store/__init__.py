"""Object storage for the in-process cluster: the :class:`Storage` Protocol and its backends.

The HTTP and REST layers only talk to the Protocol, so a durable backend (SQLite, etcd) can be
added without touching them.
"""

from kaito.cluster._store._base import (
    ConflictError,
    EventType,
    ExpiredError,
    GroupResource,
    KeyExistsError,
    KeyNotFoundError,
    ObjectIndex,
    Snapshot,
    Storage,
    StorageBackup,
    StorageEvent,
    StorageWatch,
    StoredObject,
    StoreError,
    StoreListener,
    TooLargeResourceVersionError,
)
from kaito.cluster._store._memory import MemoryStorage

__all__ = (
    "ConflictError",
    "EventType",
    "ExpiredError",
    "GroupResource",
    "KeyExistsError",
    "KeyNotFoundError",
    "MemoryStorage",
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
