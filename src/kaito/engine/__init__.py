"""kaito.engine: the framework-free asyncio reconcile engine (knows nothing of Workspaces)."""

from __future__ import annotations

from kaito.engine.clock import Clock, FakeClock, MonotonicClock
from kaito.engine.keys import ObjectKey
from kaito.engine.queue import QueueShutDown, WorkQueue
from kaito.engine.ratelimit import (
    BucketRateLimiter,
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_rate_limiter,
)

__all__ = (
    "BucketRateLimiter",
    "Clock",
    "ExponentialFailureRateLimiter",
    "FakeClock",
    "MaxOfRateLimiter",
    "MonotonicClock",
    "ObjectKey",
    "QueueShutDown",
    "RateLimiter",
    "WorkQueue",
    "default_rate_limiter",
)
