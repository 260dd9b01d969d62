from __future__ import annotations

import anyio
import httpx
import pytest

from kaito.engine.clock import FakeClock
from kaito.engine.controller import Result
from kaito.engine.errors import ApiError
from kaito.engine.keys import ObjectKey
from kaito.engine.leader import LeaderElectionConfig
from kaito.engine.manager import Manager
from kaito.engine.resources import LEASES
from tests.engine.fakekube import FakeKube
from tests.engine.support import WIDGETS, settle

pytestmark = pytest.mark.anyio


def build(kube: FakeKube, clock: FakeClock, identity: str, seen: list[tuple[str, str]]) -> Manager:
    manager = Manager(
        kube,  # type: ignore[arg-type]
        name=identity,
        leader_election=LeaderElectionConfig("widgets-lock", "kaito-system", identity=identity),
        clock=clock,
        graceful_shutdown=5,
    )

    async def reconcile(key: ObjectKey) -> Result:
        seen.append((identity, key.name))
        return Result()

    ctrl = manager.add_controller("widgets", reconcile, workers=2)
    ctrl.watch(manager.informer(WIDGETS))
    return manager


async def test_only_the_leader_reconciles_and_a_standby_takes_over_within_one_lease() -> None:
    kube, clock = FakeKube(WIDGETS, LEASES), FakeClock()
    kube.put(WIDGETS, "w1")
    seen: list[tuple[str, str]] = []
    a = build(kube, clock, "a", seen)
    b = build(kube, clock, "b", seen)
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        await settle(clock, lambda: ("a", "w1") in seen)
        tg.start_soon(b.run)
        await settle(clock, lambda: b.ready)  # the standby's caches are warm
        kube.put(WIDGETS, "w2")
        await settle(clock, lambda: ("a", "w2") in seen)
        assert [who for who, _ in seen] == ["a", "a"]
        a.stop()  # graceful: drains, then releases the lease
        await settle(clock, lambda: not a.ready)
        stopped_at = clock.now()
        await settle(clock, lambda: ("b", "w1") in seen and ("b", "w2") in seen)
        failover = clock.now() - stopped_at
        b.stop()
    assert failover <= 15.0
    assert failover <= 2.0  # released on stop: the standby wins at its next retry


async def test_probes_and_metrics_over_http() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    kube.put(WIDGETS, "w1")
    kube.fail_next("list", ApiError(500, "InternalError", "not yet"))
    manager = Manager(
        kube,  # type: ignore[arg-type]
        probe_address=("127.0.0.1", 0),
        metrics_address=("127.0.0.1", 0),
        clock=clock,
    )
    done = anyio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        done.set()
        return Result()

    manager.add_controller("widgets", reconcile).watch(manager.informer(WIDGETS))
    async with anyio.create_task_group() as tg, httpx.AsyncClient() as http:
        tg.start_soon(manager.run)
        await manager.started.wait()
        probes = f"http://127.0.0.1:{manager.probe_port}"
        assert (await http.get(f"{probes}/healthz")).status_code == 200
        await anyio.wait_all_tasks_blocked()
        not_ready = await http.get(f"{probes}/readyz")
        assert not_ready.status_code == 500
        assert "not synced" in not_ready.text or "not ready" in not_ready.text
        clock.advance_to_next()  # the informer's backoff
        await done.wait()
        assert (await http.get(f"{probes}/readyz")).status_code == 200
        text = (await http.get(f"http://127.0.0.1:{manager.metrics_port}/metrics")).text
        assert (
            'controller_runtime_reconcile_total{controller="widgets",result="success"} 1.0' in text
        )
        assert "workqueue_depth" in text
        manager.stop()
    assert not manager.ready


async def test_graceful_stop_lets_in_flight_reconciles_finish_and_cuts_hangs_at_the_deadline() -> (
    None
):
    kube, clock = FakeKube(WIDGETS), FakeClock()
    kube.put(WIDGETS, "slow")
    kube.put(WIDGETS, "stuck")
    finished: list[str] = []
    release_slow = anyio.Event()
    manager = Manager(kube, clock=clock, graceful_shutdown=30)  # type: ignore[arg-type]

    async def reconcile(key: ObjectKey) -> Result:
        if key.name == "slow":
            await release_slow.wait()
        else:
            await anyio.sleep_forever()
        finished.append(key.name)
        return Result()

    manager.add_controller("widgets", reconcile, workers=2).watch(manager.informer(WIDGETS))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await settle(clock, lambda: manager.controllers[0].stats.active_workers == 2)
        manager.stop()
        await anyio.wait_all_tasks_blocked()
        release_slow.set()
        await anyio.wait_all_tasks_blocked()
        assert finished == ["slow"]
        assert clock.next_deadline == 30  # the grace deadline holds the stuck one
        clock.advance(30)
    assert finished == ["slow"]
    assert not manager.ready
