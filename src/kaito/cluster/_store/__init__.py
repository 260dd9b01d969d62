"""Object storage for the in-process cluster: the :class:`Storage` Protocol and its backends.

The HTTP and REST layers only talk to the Protocol: memory (the default) and SQLite (durable,
``kaito up --data-dir``) implement it.
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
from kaito.cluster._store._sqlite import SqliteStorage

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
    "SqliteStorage",
    "Storage",
    "StorageBackup",
    "StorageEvent",
    "StorageWatch",
    "StoreError",
    "StoreListener",
    "StoredObject",
    "TooLargeResourceVersionError",
)
