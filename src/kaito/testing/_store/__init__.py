"""Object storage for the in-process cluster: the :class:`Store` Protocol and its backends.

The HTTP and REST layers only talk to the Protocol, so a durable backend (SQLite, etcd) can be
added without touching them.
"""

from kaito.testing._store._base import (
    ConflictError,
    EventType,
    ExpiredError,
    GroupResource,
    KeyExistsError,
    KeyNotFoundError,
    ObjectIndex,
    Snapshot,
    Store,
    StoredObject,
    StoreError,
    StoreEvent,
    StoreListener,
    StoreWatch,
    TooLargeResourceVersionError,
)
from kaito.testing._store._memory import MemoryStore

__all__ = (
    "ConflictError",
    "EventType",
    "ExpiredError",
    "GroupResource",
    "KeyExistsError",
    "KeyNotFoundError",
    "MemoryStore",
    "ObjectIndex",
    "Snapshot",
    "Store",
    "StoreError",
    "StoreEvent",
    "StoreListener",
    "StoreWatch",
    "StoredObject",
    "TooLargeResourceVersionError",
)
