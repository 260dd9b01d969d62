"""kaito.engine: the framework-free asyncio reconcile engine (knows nothing of Workspaces).

Informers cache resources and turn events into keys; a work queue deduplicates and rate-limits
them; controllers reconcile keys with N workers; a manager runs it all with leader election,
probes and controller-runtime-compatible metrics. See ``docs/engine.md``.
"""

from __future__ import annotations

from kaito.engine._backoff import Backoff
from kaito.engine._client import (
    Client,
    KubeClient,
    ListWatcher,
    ObjectClient,
    ObjectList,
    PatchType,
    WatchEvent,
    load_client,
)
from kaito.engine._clock import Clock, FakeClock, MonotonicClock
from kaito.engine._controller import Controller, ControllerStats, Reconciler, Result
from kaito.engine._errors import ApiError, TerminalError
from kaito.engine._events import EVENTS, EventRecorder
from kaito.engine._handlers import (
    EnqueueHandler,
    EventHandler,
    KeyMapper,
    Predicate,
    generation_changed,
    map_by_label,
    map_to_controller_owner,
    map_to_self,
)
from kaito.engine._informer import Informer, InformerFactory
from kaito.engine._keys import ObjectKey
from kaito.engine._leader import (
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElector,
    default_identity,
)
from kaito.engine._manager import Manager
from kaito.engine._metrics import EngineMetrics
from kaito.engine._queue import QueueShutDown, QueueStats, WorkQueue
from kaito.engine._ratelimit import (
    BucketRateLimiter,
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_rate_limiter,
)
from kaito.engine._resources import LEASES, Resource
from kaito.engine._runnable import LeaderElectionRunnable, Runnable, needs_leader_election
from kaito.engine._store import OWNER_INDEX, IndexFunc, Store, index_by_owner_uid

__all__ = (
    "EVENTS",
    "LEASES",
    "OWNER_INDEX",
    "ApiError",
    "Backoff",
    "BucketRateLimiter",
    "Client",
    "Clock",
    "Controller",
    "ControllerStats",
    "EngineMetrics",
    "EnqueueHandler",
    "EventHandler",
    "EventRecorder",
    "ExponentialFailureRateLimiter",
    "FakeClock",
    "IndexFunc",
    "Informer",
    "InformerFactory",
    "KeyMapper",
    "KubeClient",
    "LeaderElectionConfig",
    "LeaderElectionLost",
    "LeaderElectionRunnable",
    "LeaderElector",
    "ListWatcher",
    "Manager",
    "MaxOfRateLimiter",
    "MonotonicClock",
    "ObjectClient",
    "ObjectKey",
    "ObjectList",
    "PatchType",
    "Predicate",
    "QueueShutDown",
    "QueueStats",
    "RateLimiter",
    "Reconciler",
    "Resource",
    "Result",
    "Runnable",
    "Store",
    "TerminalError",
    "WatchEvent",
    "WorkQueue",
    "default_identity",
    "default_rate_limiter",
    "generation_changed",
    "index_by_owner_uid",
    "load_client",
    "map_by_label",
    "map_to_controller_owner",
    "map_to_self",
    "needs_leader_election",
)
