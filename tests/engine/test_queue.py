from __future__ import annotations

import anyio
import pytest

from kaito.engine import ExponentialFailureRateLimiter, FakeClock, QueueShutDown, WorkQueue

pytestmark = pytest.mark.anyio


def make_queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    return WorkQueue("test", clock=clock or FakeClock())


def test_adds_of_a_waiting_key_are_deduplicated() -> None:
    q = make_queue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get_nowait() == "a"
    assert q.get_nowait() == "b"
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    assert q.stats.adds == 2


def test_key_in_flight_is_not_handed_out_again_and_requeues_once_on_done() -> None:
    q = make_queue()
    q.add("a")
    assert q.get_nowait() == "a"
    q.add("a")
    q.add("a")
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()  # still processing: not handed to a second worker
    q.done("a")
    assert q.get_nowait() == "a"
    q.done("a")
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()


def test_done_of_unknown_key_is_ignored() -> None:
    q = make_queue()
    q.done("never")
    assert len(q) == 0


def test_add_after_waits_for_the_fake_clock() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("a", 10)
    q.add_after("b", 5)
    q.add_after("a", 20)  # the earlier ready time wins
    assert q.delayed == 2
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    clock.advance(5)
    assert q.get_nowait() == "b"
    clock.advance(4.5)
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    clock.advance(0.5)
    assert q.get_nowait() == "a"
    assert q.delayed == 0


def test_add_after_earlier_replaces_later() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("a", 10)
    q.add_after("a", 1)
    clock.advance(1)
    assert q.get_nowait() == "a"
    q.done("a")
    clock.advance(10)  # the stale 10 s entry must not add it again
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()


def test_rate_limited_requeue_backs_off_and_forget_resets() -> None:
    clock = FakeClock()
    q = WorkQueue[str](
        "t", clock=clock, rate_limiter=ExponentialFailureRateLimiter(base=1.0, cap=4.0)
    )
    expected = [1.0, 2.0, 4.0, 4.0]
    for delay in expected:
        q.add_rate_limited("k")
        clock.advance(delay - 0.001)
        with pytest.raises(anyio.WouldBlock):
            q.get_nowait()
        clock.advance(0.001)
        assert q.get_nowait() == "k"
        q.done("k")
    assert q.num_requeues("k") == 4
    assert q.stats.retries == 4
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("k")
    clock.advance(1.0)
    assert q.get_nowait() == "k"


async def test_get_waits_for_add() -> None:
    q = make_queue()
    got: list[str] = []

    async def worker() -> None:
        got.append(await q.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        q.add("x")
    assert got == ["x"]


async def test_get_wakes_when_a_delayed_key_is_due() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    got: list[tuple[str, float]] = []

    async def worker() -> None:
        key = await q.get()
        got.append((key, clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        q.add_after("late", 30)
        q.add_after("soon", 3)
        await anyio.wait_all_tasks_blocked()
        assert clock.next_deadline == 3
        clock.advance(3)
    assert got == [("soon", 3.0)]


async def test_no_two_workers_hold_the_same_key() -> None:
    q = make_queue()
    holding: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []
    gates = {k: anyio.Event() for k in "abc"}

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            if key in holding:
                overlaps.append(key)
            holding.add(key)
            await gates[key].wait()
            holding.discard(key)
            processed.append(key)
            q.done(key)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
        for key in "abc":
            q.add(key)
        await anyio.wait_all_tasks_blocked()
        for key in "abcabc":
            q.add(key)  # all three are in flight: each becomes dirty once
        await anyio.wait_all_tasks_blocked()
        assert q.processing == frozenset("abc")
        for gate in gates.values():
            gate.set()
        await anyio.wait_all_tasks_blocked()
        await q.shutdown_with_drain()
    assert overlaps == []
    assert sorted(processed) == sorted("abcabc")


async def test_shutdown_hands_out_remaining_then_raises() -> None:
    q = make_queue()
    q.add("a")
    q.add_after("later", 5)
    q.shutdown()
    q.add("b")  # ignored
    assert await q.get() == "a"
    with pytest.raises(QueueShutDown):
        await q.get()
    assert q.delayed == 0


async def test_shutdown_wakes_waiting_getters() -> None:
    q = make_queue()
    outcomes: list[str] = []

    async def worker() -> None:
        try:
            await q.get()
        except QueueShutDown:
            outcomes.append("shutdown")

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        q.shutdown()
    assert outcomes == ["shutdown"] * 3


async def test_shutdown_with_drain_waits_for_in_flight_keys() -> None:
    q = make_queue()
    q.add("a")
    key = q.get_nowait()
    drained = False

    async def drain() -> None:
        nonlocal drained
        await q.shutdown_with_drain()
        drained = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert not drained
        q.done(key)
    assert drained


async def test_cancelled_getter_does_not_lose_a_wakeup() -> None:
    q = make_queue()
    got: list[str] = []
    doomed_scope = anyio.CancelScope()

    async def doomed() -> None:
        with doomed_scope:
            got.append("doomed:" + await q.get())

    async def worker() -> None:
        got.append(await q.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(doomed)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        doomed_scope.cancel()  # the first waiter leaves: the next add must reach the worker
        await anyio.wait_all_tasks_blocked()
        q.add("x")
    assert got == ["x"]


async def test_work_and_queue_durations_are_recorded_on_the_clock() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    clock.advance(2)
    key = await q.get()
    clock.advance(3)
    q.done(key)
    assert q.stats.queue_duration.count == 1
    assert q.stats.queue_duration.sum == 2
    assert q.stats.work_duration.sum == 3
