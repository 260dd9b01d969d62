from __future__ import annotations

import anyio
import pytest

from kaito.engine.clock import FakeClock
from kaito.engine.errors import ApiError
from kaito.engine.keys import ObjectKey
from kaito.engine.leader import LeaderElectionConfig, LeaderElectionLost, LeaderElector
from kaito.engine.resources import LEASES
from tests.engine.fakekube import FakeKube
from tests.engine.support import settle

pytestmark = pytest.mark.anyio
KEY = ObjectKey("kaito-system", "kaito-lock")


def config(identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig("kaito-lock", "kaito-system", identity=identity)


def holder(kube: FakeKube) -> str:
    return str(kube.objects[LEASES][KEY]["spec"]["holderIdentity"])


def test_defaults_are_client_go_s_and_bad_timings_are_refused() -> None:
    cfg = config("a")
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15.0, 10.0, 2.0)
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElectionConfig("l", "ns", lease_duration=5, renew_deadline=10)


async def test_first_candidate_creates_the_lease_and_leads() -> None:
    kube, clock = FakeKube(LEASES), FakeClock()
    elector = LeaderElector(kube, config("a"), clock)
    leading = anyio.Event()

    async def lead() -> None:
        leading.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(elector.run, lead)
        await leading.wait()
        assert elector.is_leader
        spec = kube.objects[LEASES][KEY]["spec"]
        assert spec["holderIdentity"] == "a"
        assert spec["leaseDurationSeconds"] == 15
        renewed = spec["renewTime"]
        clock.advance(2)
        await anyio.wait_all_tasks_blocked()
        assert kube.objects[LEASES][KEY]["metadata"]["resourceVersion"] != "0"
        assert kube.calls["update"] >= 1
        assert isinstance(renewed, str)
        assert renewed.endswith("Z")
        tg.cancel_scope.cancel()
    # A clean stop releases the lease.
    assert holder(kube) == ""
    assert not elector.is_leader


async def test_standby_takes_over_an_unreleased_lease_within_one_lease_duration() -> None:
    kube, clock = FakeKube(LEASES), FakeClock()
    a = LeaderElector(
        kube,
        LeaderElectionConfig("kaito-lock", "kaito-system", "a", release_on_cancel=False),
        clock,
    )
    b = LeaderElector(kube, config("b"), clock)
    b_leading = anyio.Event()

    async def lead_a() -> None:
        await anyio.sleep_forever()

    async def lead_b() -> None:
        b_leading.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        a_scope = anyio.CancelScope()

        async def run_a() -> None:
            with a_scope:
                await a.run(lead_a)

        tg.start_soon(run_a)
        await settle(clock, lambda: a.is_leader)
        tg.start_soon(b.run, lead_b)
        await anyio.wait_all_tasks_blocked()
        for _ in range(5):  # b keeps waiting while a renews
            clock.advance(2)
            await anyio.wait_all_tasks_blocked()
        assert not b.is_leader
        assert holder(kube) == "a"
        a_scope.cancel()  # a dies without releasing (a crash)
        crashed_at = clock.now()
        await settle(clock, b_leading.is_set)
        took = clock.now() - crashed_at
        tg.cancel_scope.cancel()
    # The last renewal may be just before the crash, and the standby sees it one poll late.
    assert 15.0 <= took <= 15.0 + 2 * 2.0, took
    assert holder(kube) == "" or holder(kube) == "b"
    assert kube.objects[LEASES][KEY]["spec"]["leaseTransitions"] == 1


async def test_leader_that_cannot_renew_stops_leading() -> None:
    kube, clock = FakeKube(LEASES), FakeClock()
    elector = LeaderElector(kube, config("a"), clock)
    work_cancelled = anyio.Event()

    async def lead() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            work_cancelled.set()

    lost: list[LeaderElectionLost] = []

    async def run() -> None:
        try:
            await elector.run(lead)
        except LeaderElectionLost as err:
            lost.append(err)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await settle(clock, lambda: elector.is_leader)
        kube.fail_next("get", ApiError(500, "InternalError", "etcd down"), times=100)
        await settle(clock, lambda: bool(lost))
    assert work_cancelled.is_set()
    assert clock.now() <= 2 + 10 + 2
    assert not elector.is_leader
