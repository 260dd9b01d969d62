"""Engine layer: the one seam through which the engine reads time and waits.

Everything in ``kaito.engine`` that measures or waits takes a :class:`Clock`. Production code
uses :class:`MonotonicClock`; tests use :class:`FakeClock` and step it, so no test sleeps.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import anyio

__all__ = ("Clock", "FakeClock", "MonotonicClock")


class Clock(Protocol):
    """Protocol: monotonic time in seconds, sleeping, and deadlines.

    ``move_on_after`` and ``fail_after`` behave like their anyio namesakes but measure time on
    this clock, so a fake clock can expire them.
    """

    def now(self) -> float:
        """Return monotonic seconds (an arbitrary origin)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (a checkpoint even when ``seconds <= 0``)."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """Cancel the enclosed block silently once ``seconds`` have passed."""
        ...

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """Cancel the enclosed block once ``seconds`` have passed and raise ``TimeoutError``."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` (the event loop's own time base) and anyio timers."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.move_on_after(seconds)

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.fail_after(seconds)


class _Timer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False


class FakeClock:
    """A clock that only moves when a test calls :meth:`advance`.

    Sleepers and deadlines registered on it fire, in deadline order, during ``advance``.
    ``pending`` counts the timers still waiting, so a test can wait until a task is asleep
    (with ``anyio.wait_all_tasks_blocked()``) before stepping time.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    @property
    def pending(self) -> int:
        """Return how many sleeps and deadlines are still waiting."""
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)

    @property
    def next_deadline(self) -> float | None:
        """Return the earliest waiting deadline, or ``None``."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and fire every timer that is now due."""
        if seconds < 0:
            raise ValueError(f"seconds={seconds!r} is negative; a clock only moves forward")
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            deadline, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, deadline)
            timer.callback()
        self._now = target

    def advance_to_next(self) -> float:
        """Advance exactly to the earliest waiting deadline; return the step (0 if none)."""
        deadline = self.next_deadline
        if deadline is None:
            return 0.0
        step = max(deadline - self._now, 0.0)
        self.advance(step)
        return step

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        timer = self._schedule(seconds, event.set)
        try:
            await event.wait()
        finally:
            timer.cancelled = True

    @contextmanager
    def move_on_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            timer = self._schedule(seconds, scope.cancel)
            try:
                yield scope
            finally:
                timer.cancelled = True

    @contextmanager
    def fail_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            scope.cancel()

        with anyio.CancelScope() as scope:
            timer = self._schedule(seconds, expire)
            try:
                yield scope
            finally:
                timer.cancelled = True
        if fired and scope.cancelled_caught:
            raise TimeoutError

    def _schedule(self, seconds: float, callback: Callable[[], None]) -> _Timer:
        deadline = self._now + seconds if math.isfinite(seconds) else math.inf
        timer = _Timer(deadline, callback)
        if deadline <= self._now:
            callback()
            timer.cancelled = True
        else:
            heapq.heappush(self._heap, (deadline, next(self._seq), timer))
        return timer

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
