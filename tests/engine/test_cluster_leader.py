"""Leader election between two managers on the server's real Lease objects, in real time.

Timings are shortened (1.5 s lease, 0.25 s retry) so a failover takes a second or two; the
bounds asserted are the algorithm's, with a little slack for a loaded machine.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from kaito.cluster import Cluster
from kaito.engine import KubeClient, LeaderElectionConfig, Manager, ObjectKey, Result
from tests.engine.clusterkit import engine_client, widget
from tests.engine.support import WIDGETS

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
