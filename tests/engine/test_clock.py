from __future__ import annotations

import anyio
import pytest

from kaito.engine import FakeClock, MonotonicClock

pytestmark = pytest.mark.anyio


async def test_fake_sleep_wakes_only_when_advanced() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(5)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        clock.advance(4.9)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.advance(0.1)
    assert woke == [5.0]
    assert clock.pending == 0


async def test_fake_fail_after_raises_timeout_and_move_on_after_is_silent() -> None:
    clock = FakeClock()
    outcomes: list[str] = []

    async def hang_with_fail_after() -> None:
        try:
            with clock.fail_after(3):
                await anyio.sleep_forever()
        except TimeoutError:
            outcomes.append("timeout")

    async def hang_with_move_on_after() -> None:
        with clock.move_on_after(2) as scope:
            await anyio.sleep_forever()
        outcomes.append(f"moved_on={scope.cancelled_caught}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hang_with_fail_after)
        tg.start_soon(hang_with_move_on_after)
        await anyio.wait_all_tasks_blocked()
        assert clock.next_deadline == 2
        clock.advance_to_next()
        await anyio.wait_all_tasks_blocked()
        clock.advance_to_next()
    assert outcomes == ["moved_on=True", "timeout"]


async def test_fake_fail_after_not_expired_does_not_raise() -> None:
    clock = FakeClock()
    with clock.fail_after(1):
        await anyio.lowlevel.checkpoint()
    assert clock.pending == 0


def test_fake_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="negative"):
        FakeClock().advance(-1)


async def test_monotonic_clock_moves_and_times_out() -> None:
    clock = MonotonicClock()
    start = clock.now()
    await clock.sleep(0)
    with pytest.raises(TimeoutError), clock.fail_after(0):
        await anyio.sleep_forever()
    with clock.move_on_after(0):
        await anyio.sleep_forever()
    assert clock.now() >= start
