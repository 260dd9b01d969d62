"""A Manager running controllers end to end against the in-process API server: probes,
metrics, faults, cancellation and the graceful stop."""

from __future__ import annotations

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kaito.cluster import Cluster, RequestInfo
from kaito.engine import LeaderElectionConfig, Manager, ObjectKey, Result
from tests.engine.clusterkit import (
    API_VERSION,
    NS,
    WIDGETS,
    StepClock,
    build_widget_operator,
    converged,
    engine_client,
    server_until,
    widget,
)

pytestmark = pytest.mark.anyio
LEASE_NS = "kaito-system"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``(name, labels) -> value`` of every sample in a Prometheus text page."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_manager_runs_a_controller_end_to_end(cluster: Cluster) -> None:
    await cluster.create_namespace(LEASE_NS)
    names = {f"w{i}" for i in range(10)}
    for name in sorted(names)[:5]:
        await cluster.client.create(widget(name, NS))
    listing = anyio.Event()

    def note_list(_: RequestInfo) -> bool:
        listing.set()
        return True

    refused = cluster.faults.fail(500, times=None, verb="list", resource="widgets", when=note_list)
    flaky = cluster.faults.fail(500, verb="patch", subresource="status", name="w3")
    async with (
        engine_client(cluster) as client,
        httpx.AsyncClient(timeout=5) as http,
        anyio.create_task_group() as tg,
    ):
        manager = Manager(
            client,
            name="widget-operator",
            leader_election=LeaderElectionConfig("widget-operator", LEASE_NS),
            probe_address=("127.0.0.1", 0),
            metrics_address=("127.0.0.1", 0),
            graceful_shutdown=5,
        )
        build_widget_operator(manager)
        tg.start_soon(manager.run)
        await manager.started.wait()
        probes = f"http://127.0.0.1:{manager.probe_port}"
        with anyio.fail_after(10):
            await listing.wait()
        assert (await http.get(f"{probes}/healthz")).status_code == 200
        not_ready = await http.get(f"{probes}/readyz")
        assert not_ready.status_code == 500
        assert "not synced" in not_ready.text
        refused.remove()
        for name in sorted(names)[5:]:
            await cluster.client.create(widget(name, NS))
        await server_until(cluster, lambda: converged(cluster, names))
        assert (await http.get(f"{probes}/readyz")).status_code == 200

        # A spec change bumps the generation; a deleted ConfigMap is put back via its owner.
        await cluster.client.patch(API_VERSION, "Widget", "w0", {"spec": {"size": 5}}, namespace=NS)
        await cluster.client.delete("v1", "ConfigMap", "w1-config", NS)
        await server_until(cluster, lambda: converged(cluster, names))
        w0 = await cluster.client.get(API_VERSION, "Widget", "w0", NS)
        assert w0["status"] == {"observedGeneration": 2, "configMap": "w0-config"}

        page = await http.get(f"http://127.0.0.1:{manager.metrics_port}/metrics")
        lease = await cluster.client.get(
            "coordination.k8s.io/v1", "Lease", "widget-operator", LEASE_NS
        )
        manager.stop()
    assert flaky.hits == 1
    metrics = samples(page.text)
    ctrl = frozenset({("controller", "widgets")})
    queue = frozenset({("controller", "widgets"), ("name", "widgets")})

    def result(kind: str) -> float:
        return metrics[("controller_runtime_reconcile_total", ctrl | {("result", kind)})]

    assert result("error") == 1  # the injected 500 on w3's status, retried with backoff
    assert result("success") >= len(names) + 2
    assert metrics[("controller_runtime_reconcile_errors_total", ctrl)] == 1
    assert metrics[("controller_runtime_max_concurrent_reconciles", ctrl)] == 4
    assert metrics[("workqueue_retries_total", queue)] == 1
    assert metrics[("workqueue_adds_total", queue)] >= len(names)
    assert metrics[("workqueue_depth", queue)] == 0
    assert metrics[("leader_election_master_status", frozenset({("name", "widget-operator")}))] == 1
    assert ("controller_runtime_reconcile_time_seconds_count", ctrl) in metrics
    assert lease["spec"]["holderIdentity"] == manager.elector.config.identity  # type: ignore[union-attr]
    assert not manager.ready


async def test_cancelling_a_running_manager_leaves_nothing_behind(cluster: Cluster) -> None:
    await cluster.create_namespace(LEASE_NS)
    await cluster.client.create(widget("stuck", NS))
    started, cancelled = anyio.Event(), anyio.Event()
    async with engine_client(cluster) as client:
        manager = Manager(
            client,
            leader_election=LeaderElectionConfig("widget-operator", LEASE_NS),
            probe_address=("127.0.0.1", 0),
        )

        async def reconcile(key: ObjectKey) -> Result:
            started.set()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()
            return Result()

        manager.add_controller("widgets", reconcile).watch(manager.informer(WIDGETS, namespace=NS))
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await started.wait()  # a reconcile is in flight, the watch is open
                assert cluster.faults.open_watches == 1
                tg.cancel_scope.cancel()
        assert cancelled.is_set()
        assert not manager.ready
        lease = await cluster.client.get(
            "coordination.k8s.io/v1", "Lease", "widget-operator", LEASE_NS
        )
        assert lease["spec"]["holderIdentity"] == ""  # released on the way out
        with pytest.raises(OSError, match="connection attempts failed"):  # the probe server is gone
            await anyio.connect_tcp("127.0.0.1", manager.probe_port or 0)
    # The server saw the watch's connection go (polled: nothing on the server signals it).
    with anyio.fail_after(5):
        while cluster.faults.open_watches:
            await anyio.sleep(0.01)


async def test_graceful_stop_lets_in_flight_reconciles_finish_and_cuts_hangs_at_the_deadline(
    cluster: Cluster,
) -> None:
    for name in ("slow", "stuck"):
        await cluster.client.create(widget(name, NS))
    finished: list[str] = []
    release_slow = anyio.Event()
    clock = StepClock()
    async with engine_client(cluster) as client:
        manager = Manager(client, clock=clock, graceful_shutdown=30)
        busy = anyio.Event()

        async def reconcile(key: ObjectKey) -> Result:
            if manager.controllers[0].stats.active_workers == 2:
                busy.set()
            if key.name == "slow":
                await release_slow.wait()
            else:
                await anyio.sleep_forever()
            finished.append(key.name)
            return Result()

        manager.add_controller("widgets", reconcile, workers=2).watch(
            manager.informer(WIDGETS, namespace=NS)
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run)
            with anyio.fail_after(10):
                await busy.wait()
            manager.stop()
            await anyio.wait_all_tasks_blocked()
            release_slow.set()
            await anyio.wait_all_tasks_blocked()
            assert finished == ["slow"]
            assert clock.next_deadline == 30  # the grace deadline holds the stuck one
            clock.advance(30)
    assert finished == ["slow"]
    assert not manager.ready
