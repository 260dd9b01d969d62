"""Leader election on the in-process server's real Lease objects.

Between two managers it runs in real time, with timings shortened (1.5 s lease, 0.25 s retry)
so a failover takes a second or two; the bounds asserted are the algorithm's, with a little
slack for a loaded machine. A single elector runs on a stepped clock.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from kaito.cluster import Cluster
from kaito.engine import (
    KubeClient,
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElector,
    Manager,
    ObjectKey,
    Result,
)
from tests.engine.clusterkit import WIDGETS, StepClock, engine_client, widget

pytestmark = pytest.mark.anyio
NS = "apps"
LEASE_NS = "kaito-system"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 1.5, 1.0, 0.25
SLACK = 0.5  # scheduling and HTTP latency on a busy 2-core machine


class Reconciles:
    """Records ``(identity, name)`` of every reconcile and wakes waiters."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._changed = anyio.Event()

    def add(self, identity: str, name: str) -> None:
        self.seen.append((identity, name))
        self._changed.set()

    async def until(self, check: Callable[[], bool], *, within: float = 10.0) -> None:
        with anyio.fail_after(within):
            while not check():
                self._changed = anyio.Event()
                await self._changed.wait()


def build(client: KubeClient, identity: str, log: Reconciles, *, release: bool) -> Manager:
    manager = Manager(
        client,
        name=identity,
        leader_election=LeaderElectionConfig(
            "widgets-lock",
            LEASE_NS,
            identity=identity,
            lease_duration=LEASE_DURATION,
            renew_deadline=RENEW_DEADLINE,
            retry_period=RETRY_PERIOD,
            release_on_cancel=release,
        ),
        graceful_shutdown=2,
    )

    async def reconcile(key: ObjectKey) -> Result:
        log.add(identity, key.name)
        return Result()

    manager.add_controller("widgets", reconcile).watch(manager.informer(WIDGETS, namespace=NS))
    return manager


async def lease_spec(cluster: Cluster) -> dict[str, object]:
    lease = await cluster.client.get("coordination.k8s.io/v1", "Lease", "widgets-lock", LEASE_NS)
    spec: dict[str, object] = lease["spec"]
    return spec


@pytest.mark.parametrize("crash", [pytest.param(True, id="crash"), pytest.param(False, id="stop")])
async def test_standby_takes_over_within_one_lease(cluster: Cluster, crash: bool) -> None:
    """A crashed leader keeps the Lease until it expires; a stopped one hands it over at once."""
    await cluster.create_namespace(LEASE_NS)
    await cluster.client.create(widget("w1", NS))
    log = Reconciles()
    async with (
        engine_client(cluster) as client_a,
        engine_client(cluster) as client_b,
        anyio.create_task_group() as tg,
    ):
        a = build(client_a, "a", log, release=not crash)
        b = build(client_b, "b", log, release=True)
        a_scope = anyio.CancelScope()

        async def run_a() -> None:
            with a_scope:
                await a.run()

        tg.start_soon(run_a)
        await log.until(lambda: ("a", "w1") in log.seen)
        tg.start_soon(b.run)
        with anyio.fail_after(10):
            await b.informers.wait_synced()  # the standby's cache is warm
        await cluster.client.create(widget("w2", NS))
        await log.until(lambda: ("a", "w2") in log.seen)
        assert [who for who, _ in log.seen] == ["a", "a"]
        assert (await lease_spec(cluster))["holderIdentity"] == "a"
        assert b.elector is not None
        assert not b.elector.is_leader

        left_at = anyio.current_time()
        if crash:
            a_scope.cancel()  # the process dies: nothing is released
        else:
            a.stop()  # graceful: drains, then releases the Lease
        await log.until(lambda: {("b", "w1"), ("b", "w2")} <= set(log.seen))
        failover = anyio.current_time() - left_at
        spec = await lease_spec(cluster)
        b.stop()
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    if crash:
        # b waits until the record it last saw renewed is a lease duration old, checking every
        # retry period: never sooner (no two leaders), at most one retry late.
        assert (
            LEASE_DURATION - RETRY_PERIOD <= failover <= LEASE_DURATION + 2 * RETRY_PERIOD + SLACK
        )
    else:
        # Released: b wins at its next retry, well within a lease duration.
        assert failover <= RETRY_PERIOD + SLACK < LEASE_DURATION
    released = await lease_spec(cluster)
    assert released["holderIdentity"] == ""  # b stopped cleanly and let go


def config(identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig("kaito-lock", LEASE_NS, identity=identity)


def test_defaults_are_client_go_s_and_bad_timings_are_refused() -> None:
    cfg = config("a")
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15.0, 10.0, 2.0)
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElectionConfig("l", "ns", lease_duration=5, renew_deadline=10)


async def kaito_lock(cluster: Cluster) -> dict[str, object]:
    return await cluster.client.get("coordination.k8s.io/v1", "Lease", "kaito-lock", LEASE_NS)


async def test_the_first_candidate_creates_the_lease_renews_it_and_releases_it(
    cluster: Cluster,
) -> None:
    await cluster.create_namespace(LEASE_NS)
    renewals = cluster.faults.delay(0, times=None, verb="update", resource="leases")  # counts
    clock = StepClock()
    leading = anyio.Event()

    async def lead() -> None:
        leading.set()
        await anyio.sleep_forever()

    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        elector = LeaderElector(client, config("a"), clock)
        tg.start_soon(elector.run, lead)
        with anyio.fail_after(10):
            await leading.wait()
        assert elector.is_leader
        created = await kaito_lock(cluster)
        spec = created["spec"]
        assert isinstance(spec, dict)
        assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("a", 15)
        assert spec["leaseTransitions"] == 0
        assert await clock.next_sleep() == 2.0  # the retry period, then a renewal
        clock.advance(2)
        assert await clock.next_sleep() == 2.0
        renewed = await kaito_lock(cluster)
        assert renewed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]  # type: ignore[index]
        assert str(renewed["spec"]["renewTime"]).endswith("Z")  # type: ignore[index]
        tg.cancel_scope.cancel()
    assert renewals.hits >= 2  # a renewal, then the release on the way out
    released = await kaito_lock(cluster)
    assert released["spec"]["holderIdentity"] == ""  # type: ignore[index]
    assert not elector.is_leader


async def test_a_leader_that_cannot_renew_stops_leading_within_the_renew_deadline(
    cluster: Cluster,
) -> None:
    await cluster.create_namespace(LEASE_NS)
    clock = StepClock()
    work_cancelled = anyio.Event()
    leading = anyio.Event()
    lost: list[LeaderElectionLost] = []

    async def lead() -> None:
        leading.set()
        try:
            await anyio.sleep_forever()
        finally:
            work_cancelled.set()

    async with engine_client(cluster) as client:
        elector = LeaderElector(client, config("a"), clock)

        async def run() -> None:
            try:
                await elector.run(lead)
            except LeaderElectionLost as err:
                lost.append(err)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await leading.wait()
                started = clock.now()
                failing = cluster.faults.fail(500, times=None, verb="get", resource="leases")
                clock.auto_advance = True  # every retry happens at once, in fake time
                clock.advance_to_next()
    assert lost
    assert work_cancelled.is_set()
    assert clock.now() - started <= 2 + 10 + 2  # one retry period, then the renew deadline
    assert failing.hits >= 2
    assert not elector.is_leader
