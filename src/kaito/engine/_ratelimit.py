"""Engine layer: rate limiters that decide how long a failed key waits before its retry.

The defaults match client-go's ``DefaultControllerRateLimiter``: per-key exponential backoff
(5 ms doubling to a 1000 s cap) combined with an overall token bucket (10 qps, burst 100) by
taking the longer of the two delays.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from kaito.engine._clock import Clock, MonotonicClock

__all__ = (
    "BucketRateLimiter",
    "ExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "default_rate_limiter",
)


class RateLimiter(Protocol):
    """Protocol: per-key retry delays.

    ``when`` records one more failure of ``key`` and returns the delay in seconds before it may
    be retried; ``forget`` clears the key's history; ``retries`` counts failures since the last
    ``forget``.
    """

    def when(self, key: Hashable) -> float:
        """Record a failure of ``key`` and return its delay in seconds."""
        ...

    def forget(self, key: Hashable) -> None:
        """Drop the failure history of ``key`` (its next delay is the base delay again)."""
        ...

    def retries(self, key: Hashable) -> int:
        """Return the failures recorded for ``key`` since it was last forgotten."""
        ...


class ExponentialFailureRateLimiter:
    """Per-key exponential backoff: ``base * 2**failures``, capped at ``cap`` seconds."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError(
                f"base={base!r}, cap={cap!r} is not a valid backoff; need 0 < base <= cap"
            )
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        # 2**exp overflows float for huge exp; once past the cap, stay there.
        if exp >= 1024:
            return self.cap
        return min(self.base * 2.0**exp, self.cap)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """An overall token bucket shared by all keys: ``qps`` tokens a second, ``burst`` at most.

    Each ``when`` reserves one token and returns how long to wait for it, like Go's
    ``rate.Limiter.Reserve().Delay()``. It keeps no per-key state.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"qps={qps!r}, burst={burst!r} is not a valid bucket; need both > 0")
        self.qps = qps
        self.burst = burst
        self._clock = clock or MonotonicClock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, key: Hashable) -> float:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: Hashable) -> None:
        return None

    def retries(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """Combine limiters: the delay is the longest of theirs; ``forget`` reaches all of them."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, key: Hashable) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def retries(self, key: Hashable) -> int:
        return max(limiter.retries(key) for limiter in self.limiters)


def default_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter:
    """Return client-go's default controller limiter: 5 ms..1000 s per key, 10 qps burst 100."""
    return MaxOfRateLimiter(
        ExponentialFailureRateLimiter(base=0.005, cap=1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
