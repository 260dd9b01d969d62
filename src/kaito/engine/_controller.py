"""Engine layer: a controller runs a reconcile function over a queue of keys with N workers.

The outcome of each pass maps onto the queue as in controller-runtime: an exception requeues
the key with rate-limited backoff (logged once, with the key); a :class:`TerminalError` is
logged and not retried; ``Result(requeue_after=...)`` forgets the backoff and checks again
later; a plain ``Result()`` forgets the backoff. A pass that outlives ``reconcile_timeout`` is
cancelled and counts as an error. Every pass binds ``controller``, ``key`` and
``reconcile_id`` to the structlog context.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
import attrs
import structlog
from structlog.contextvars import bind_contextvars, reset_contextvars

from kaito.engine._clock import Clock, MonotonicClock
from kaito.engine._errors import TerminalError
from kaito.engine._handlers import EnqueueHandler, KeyMapper, Predicate, map_to_self
from kaito.engine._informer import Informer
from kaito.engine._keys import ObjectKey
from kaito.engine._queue import QueueShutDown, WorkQueue
from kaito.engine._ratelimit import RateLimiter
from kaito.engine._stats import RECONCILE_TIME_BUCKETS, Histogram

__all__ = ("Controller", "ControllerStats", "Reconciler", "Result")

log = structlog.get_logger("kaito.engine._controller")


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@attrs.frozen
class Result:
    """What a reconcile asks for next.

    ``requeue_after`` (seconds or a ``timedelta``) reconciles the key again after that long:
    use it to poll. ``requeue=True`` requeues with rate-limited backoff; like controller-runtime,
    prefer raising (a retry) or ``requeue_after`` (a poll), which say what you mean.
    """

    requeue_after: float | timedelta | None = None
    requeue: bool = False

    @property
    def requeue_after_seconds(self) -> float | None:
        """Return ``requeue_after`` in seconds."""
        return _seconds(self.requeue_after)


Reconciler = Callable[[ObjectKey], Awaitable[Result | None]]


class ControllerStats:
    """Counters for the ``controller_runtime_*`` metrics of one controller."""

    __slots__ = ("active_workers", "errors", "reconcile_time", "terminal_errors", "totals")

    def __init__(self) -> None:
        self.totals = {"success": 0, "error": 0, "requeue": 0, "requeue_after": 0}
        self.errors = 0
        self.terminal_errors = 0
        self.active_workers = 0
        self.reconcile_time = Histogram(RECONCILE_TIME_BUCKETS)


class Controller:
    """Reconciles the keys in its queue with ``workers`` concurrent workers.

    Feed it with :meth:`watch` (informer events mapped to keys) or :meth:`add`. A key is never
    reconciled by two workers at once. :meth:`run` runs until cancelled or until
    :meth:`shutdown`; either way no worker is left behind.
    """

    def __init__(
        self,
        name: str,
        reconcile: Reconciler,
        *,
        workers: int = 1,
        reconcile_timeout: float | timedelta | None = None,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers!r} must be at least 1")
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.reconcile_timeout = _seconds(reconcile_timeout)
        self.clock = clock or MonotonicClock()
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            name, clock=self.clock, rate_limiter=rate_limiter
        )
        self.stats = ControllerStats()
        self._log = log.bind(controller=name)
        self._ids = random.Random()  # reconcile IDs: unique enough, no syscall per pass

    def watch(
        self,
        informer: Informer,
        mapper: KeyMapper = map_to_self,
        predicate: Predicate | None = None,
    ) -> EnqueueHandler:
        """Enqueue the keys ``mapper`` gives for each event of ``informer`` (own key by default)."""
        handler = EnqueueHandler(self.queue, mapper, predicate)
        informer.add_handler(handler)
        return handler

    def add(self, key: ObjectKey) -> None:
        """Enqueue ``key`` now."""
        self.queue.add(key)

    async def run(self) -> None:
        """Run the workers until cancelled or until the queue is shut down and drained."""
        self._log.info("controller_started", workers=self.workers)
        try:
            async with anyio.create_task_group() as tg:
                for i in range(self.workers):
                    tg.start_soon(self._worker, name=f"{self.name} worker {i}")
        finally:
            self.queue.shutdown()
            self._log.info("controller_stopped")

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop taking new keys and wait (at most ``grace`` seconds) for in-flight ones."""
        if grace is None:
            await self.queue.shutdown_with_drain()
            return
        with self.clock.move_on_after(grace):
            await self.queue.shutdown_with_drain()

    async def _worker(self) -> None:
        queue = self.queue
        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            try:
                await self._process(key)
            finally:
                queue.done(key)

    async def _process(self, key: ObjectKey) -> None:
        stats = self.stats
        queue = self.queue
        clock = self.clock
        started = clock.now()
        stats.active_workers += 1
        reconcile_id = f"{self._ids.getrandbits(128):032x}"
        # bind/reset rather than the bound_contextvars context manager: same effect, and this
        # runs once per pass.
        tokens = bind_contextvars(controller=self.name, key=str(key), reconcile_id=reconcile_id)
        try:
            try:
                if self.reconcile_timeout is None:
                    result = await self.reconcile(key)
                else:
                    with clock.fail_after(self.reconcile_timeout):
                        result = await self.reconcile(key)
            except TerminalError as err:
                stats.terminal_errors += 1
                stats.errors += 1
                stats.totals["error"] += 1
                self._log.error(
                    "reconcile_failed_terminal",
                    key=str(key),
                    reconcile_id=reconcile_id,
                    error=str(err),
                )
                return
            except TimeoutError:
                stats.errors += 1
                stats.totals["error"] += 1
                queue.add_rate_limited(key)
                self._log.error(
                    "reconcile_timed_out",
                    key=str(key),
                    reconcile_id=reconcile_id,
                    timeout=self.reconcile_timeout,
                    retries=queue.num_requeues(key),
                )
                return
            except Exception as err:
                stats.errors += 1
                stats.totals["error"] += 1
                queue.add_rate_limited(key)
                self._log.error(
                    "reconcile_failed",
                    key=str(key),
                    reconcile_id=reconcile_id,
                    error=str(err) or type(err).__name__,
                    error_type=type(err).__name__,
                    retries=queue.num_requeues(key),
                    exc_info=True,
                )
                return
            finally:
                reset_contextvars(**tokens)
            after = result.requeue_after_seconds if result is not None else None
            if after is not None and after > 0:
                queue.forget(key)
                queue.add_after(key, after)
                stats.totals["requeue_after"] += 1
            elif result is not None and result.requeue:
                queue.add_rate_limited(key)
                stats.totals["requeue"] += 1
            else:
                queue.forget(key)
                stats.totals["success"] += 1
        finally:
            stats.active_workers -= 1
            stats.reconcile_time.observe(clock.now() - started)
