"""Hypothesis state machine: the work queue against a small reference model."""

from __future__ import annotations

from collections.abc import Hashable

import anyio
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from kaito.engine import ExponentialFailureRateLimiter, FakeClock, QueueShutDown, WorkQueue

KEYS = st.sampled_from("abcd")
DELAYS = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])
BASE, CAP = 0.5, 4.0


class RecordingLimiter(ExponentialFailureRateLimiter):
    def __init__(self) -> None:
        super().__init__(base=BASE, cap=CAP)
        self.given: dict[Hashable, list[float]] = {}

    def when(self, key: Hashable) -> float:
        delay = super().when(key)
        self.given.setdefault(key, []).append(delay)
        return delay

    def forget(self, key: Hashable) -> None:
        super().forget(key)
        self.given.pop(key, None)


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.limiter = RecordingLimiter()
        self.queue = WorkQueue[str]("prop", clock=self.clock, rate_limiter=self.limiter)
        # The reference model.
        self.ready: list[str] = []
        self.dirty: set[str] = set()
        self.held: set[str] = set()
        self.delayed: dict[str, tuple[float, int]] = {}
        self.seq = 0
        self.failures: dict[str, int] = {}
        self.shut = False

    # -- model helpers --------------------------------------------------------------------

    def model_add(self, key: str) -> None:
        if self.shut or key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.held:
            self.ready.append(key)

    def model_add_after(self, key: str, delay: float) -> None:
        if self.shut:
            return
        if delay <= 0:
            self.model_add(key)
            return
        when = self.clock.now() + delay
        current = self.delayed.get(key)
        if current is not None and current[0] <= when:
            return
        self.seq += 1
        self.delayed[key] = (when, self.seq)

    def model_promote(self) -> None:
        now = self.clock.now()
        due = sorted((v, k) for k, v in self.delayed.items() if v[0] <= now)
        for _, key in due:
            del self.delayed[key]
            self.model_add(key)

    # -- rules ----------------------------------------------------------------------------

    @rule(key=KEYS, times=st.integers(1, 3))
    def add(self, key: str, times: int) -> None:
        for _ in range(times):
            self.queue.add(key)
            self.model_add(key)

    @rule()
    def get(self) -> None:
        self.model_promote()
        if self.ready:
            key = self.queue.get_nowait()
            expected = self.ready.pop(0)
            assert key == expected
            assert key not in self.held, "a key was handed to a second worker"
            self.dirty.discard(key)
            self.held.add(key)
        elif self.shut:
            with pytest.raises(QueueShutDown):
                self.queue.get_nowait()
        else:
            with pytest.raises(anyio.WouldBlock):
                self.queue.get_nowait()

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.held)))
        self.queue.done(key)
        self.held.discard(key)
        if key in self.dirty:
            self.ready.append(key)

    @rule(key=KEYS, delay=DELAYS)
    def add_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)
        self.model_add_after(key, delay)

    @rule(step=st.sampled_from([0.25, 0.5, 1.0, 4.0]))
    def advance(self, step: float) -> None:
        self.clock.advance(step)

    @rule(key=KEYS)
    def add_rate_limited(self, key: str) -> None:
        self.queue.add_rate_limited(key)
        if self.shut:
            return
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        expected = min(BASE * 2**n, CAP)
        given = self.limiter.given[key]
        assert given[-1] == expected
        assert given == sorted(given), "backoff must not shrink between forgets"
        assert max(given) <= CAP
        self.model_add_after(key, expected)

    @rule(key=KEYS)
    def forget(self, key: str) -> None:
        self.queue.forget(key)
        self.failures.pop(key, None)
        assert self.queue.num_requeues(key) == 0

    @precondition(lambda self: not self.shut)
    @rule()
    def shutdown(self) -> None:
        self.queue.shutdown()
        self.shut = True
        self.delayed.clear()

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        assert self.queue.processing == frozenset(self.held)
        assert self.queue.delayed == len(self.delayed)
        assert len(self.ready) == len(set(self.ready)), "a waiting key is queued twice"
        assert not (set(self.ready) & self.held), "an in-flight key is also queued"
        for key, n in self.failures.items():
            assert self.queue.num_requeues(key) == n

    @invariant()
    def depth_matches_after_promotion(self) -> None:
        # Depth only counts promoted keys; compare on a copy of the model's view.
        now = self.clock.now()
        due = {k for k, (when, _) in self.delayed.items() if when <= now}
        assert len(self.queue) <= len(self.ready) + len(due)


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
