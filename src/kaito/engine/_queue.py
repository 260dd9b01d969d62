"""Engine layer: the work queue that feeds keys to a controller's workers.

Semantics follow client-go's ``workqueue``:

- a key added while it is already waiting is not added twice (dedup);
- a key being processed is never handed to a second worker; if it is added meanwhile it is
  queued again, once, when the worker calls :meth:`WorkQueue.done`;
- :meth:`WorkQueue.add_after` delays a key (the earliest pending delay wins);
- :meth:`WorkQueue.add_rate_limited` delays a key by its rate limiter, and
  :meth:`WorkQueue.forget` resets that key's backoff.

The queue owns no task: delayed keys are promoted whenever the queue is touched, and a waiting
:meth:`WorkQueue.get` sleeps on the injected clock only until the next delayed key is due.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import anyio

from kaito.engine._clock import Clock, MonotonicClock
from kaito.engine._ratelimit import RateLimiter, default_rate_limiter
from kaito.engine._stats import WORKQUEUE_BUCKETS, Histogram

__all__ = ("QueueShutDown", "QueueStats", "WorkQueue")

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and has nothing left."""


class QueueStats:
    """Counters a queue keeps for the ``workqueue_*`` metrics (read at scrape time)."""

    __slots__ = ("adds", "queue_duration", "retries", "work_duration")

    def __init__(self) -> None:
        self.adds = 0
        self.retries = 0
        self.queue_duration = Histogram(WORKQUEUE_BUCKETS)
        self.work_duration = Histogram(WORKQUEUE_BUCKETS)


class WorkQueue(Generic[K]):
    """A deduplicating, single-flight, delaying and rate-limited queue of keys.

    Not thread-safe: use it from one event loop. ``get`` may be awaited by any number of
    workers; every key it returns must be passed to ``done`` exactly once.
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self.clock = clock or MonotonicClock()
        self.rate_limiter = rate_limiter or default_rate_limiter(self.clock)
        self.stats = QueueStats()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._added_at: dict[K, float] = {}
        self._processing: dict[K, float] = {}
        self._delayed: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._waiters: deque[anyio.Event] = deque()
        self._shutting_down = False
        self._drained: anyio.Event | None = None

    # -- adding ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is already waiting; ignored after shutdown."""
        if self._shutting_down or key in self._dirty:
            return
        self.stats.adds += 1
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._added_at[key] = self.clock.now()
        if self._waiters:
            self._waiters.popleft().set()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` once ``delay`` seconds have passed (at once if ``delay <= 0``).

        If ``key`` is already waiting for a delay, the earlier of the two ready times is kept.
        """
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready = self.clock.now() + delay
        current = self._delayed.get(key)
        if current is not None and current <= ready:
            return
        self._delayed[key] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), key))
        if self._waiters and self._heap[0][0] == ready:
            # A sleeping getter may be waiting for a later deadline: let it recompute.
            self._waiters.popleft().set()

    def add_rate_limited(self, key: K) -> None:
        """Queue ``key`` after the delay its rate limiter gives (one more recorded failure)."""
        if self._shutting_down:
            return
        self.stats.retries += 1
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff; call it when the key was processed successfully."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """Return how many rate-limited requeues ``key`` had since it was last forgotten."""
        return self.rate_limiter.retries(key)

    # -- taking ---------------------------------------------------------------------------

    def get_nowait(self) -> K:
        """Return the next ready key and mark it processing.

        Raises:
            anyio.WouldBlock: no key is ready.
            QueueShutDown: the queue is shut down and empty.
        """
        if self._heap:
            self._promote_due()
        if self._queue:
            return self._take()
        if self._shutting_down:
            raise QueueShutDown(self.name)
        raise anyio.WouldBlock

    async def get(self) -> K:
        """Wait for the next ready key and mark it processing.

        Raises ``QueueShutDown`` once the queue is shut down and empty. Cancelling a waiting
        ``get`` loses no key.
        """
        while True:
            if self._heap:
                self._promote_due()
            if self._queue:
                return self._take()
            if self._shutting_down:
                raise QueueShutDown(self.name)
            event = anyio.Event()
            self._waiters.append(event)
            try:
                if self._heap:
                    with self.clock.move_on_after(self._heap[0][0] - self.clock.now()):
                        await event.wait()
                else:
                    await event.wait()
            except BaseException:
                if event.is_set():
                    # We were handed a wake-up we will not use: pass it on.
                    self._wake_one()
                raise
            finally:
                if not event.is_set():
                    self._waiters.remove(event)

    def done(self, key: K) -> None:
        """Mark ``key`` processed; if it was added meanwhile, queue it again (once)."""
        started = self._processing.pop(key, None)
        if started is None:
            return
        now = self.clock.now()
        self.stats.work_duration.observe(now - started)
        if key in self._dirty:
            self._queue.append(key)
            self._added_at[key] = now
            if self._waiters:
                self._waiters.popleft().set()
        elif self._drained is not None and not self._processing and not self._queue:
            self._drained.set()

    # -- shutting down --------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting keys and drop delayed ones.

        Keys already queued are still handed out; once none are left, every ``get`` raises
        ``QueueShutDown``. Keys being processed are not waited for.
        """
        self._shutting_down = True
        self._delayed.clear()
        self._heap.clear()
        while self._waiters:
            self._waiters.popleft().set()

    async def shutdown_with_drain(self) -> None:
        """Shut down, then wait until every queued and in-flight key has been ``done``.

        Workers must keep calling ``get``/``done`` for this to return; cancel it to give up.
        """
        self.shutdown()
        if not self._processing and not self._queue:
            return
        self._drained = anyio.Event()
        await self._drained.wait()

    @property
    def shutting_down(self) -> bool:
        """Return whether :meth:`shutdown` was called."""
        return self._shutting_down

    # -- introspection --------------------------------------------------------------------

    def __len__(self) -> int:
        """Return the number of keys ready to be handed out (the ``workqueue_depth``)."""
        return len(self._queue)

    @property
    def delayed(self) -> int:
        """Return how many keys are waiting for a delay."""
        return len(self._delayed)

    @property
    def processing(self) -> frozenset[K]:
        """Return the keys currently held by workers."""
        return frozenset(self._processing)

    def processing_since(self) -> list[float]:
        """Return when each in-flight key was handed out (for the unfinished-work metrics)."""
        return list(self._processing.values())

    def __repr__(self) -> str:
        return (
            f"WorkQueue(name={self.name!r}, depth={len(self._queue)}, "
            f"processing={len(self._processing)}, delayed={len(self._delayed)})"
        )

    # -- internals ------------------------------------------------------------------------

    def _take(self) -> K:
        key = self._queue.popleft()
        now = self.clock.now()
        self._dirty.discard(key)
        self._processing[key] = now
        added = self._added_at.pop(key, None)
        if added is not None:
            self.stats.queue_duration.observe(now - added)
        return key

    def _promote_due(self) -> None:
        now = self.clock.now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            ready, _, key = heapq.heappop(heap)
            if self._delayed.get(key) == ready:
                del self._delayed[key]
                self.add(key)

    def _wake_one(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()
