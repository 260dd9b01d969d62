"""A Manager running a controller end to end against the in-process API server."""

from __future__ import annotations

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kaito.cluster import Cluster, RequestInfo
from kaito.engine import (
    ApiError,
    Backoff,
    LeaderElectionConfig,
    Manager,
    ObjectKey,
    Resource,
    Result,
    map_to_controller_owner,
)
from tests.engine.clusterkit import API_VERSION, engine_client, server_until, widget
from tests.engine.support import WIDGETS

pytestmark = pytest.mark.anyio
NS = "apps"
LEASE_NS = "kaito-system"
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
JSON = dict[str, object]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``(name, labels) -> value`` of every sample in a Prometheus text page."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def build(manager: Manager) -> None:
    """The operator under test: each Widget gets an owned ConfigMap, then its status."""
    client = manager.client
    widgets = manager.informer(WIDGETS, namespace=NS)
    configmaps = manager.informer(CONFIGMAPS, namespace=NS)
    for informer in (widgets, configmaps):
        informer.backoff = Backoff(initial=0.01, cap=0.05)  # retry refused lists quickly

    async def reconcile(key: ObjectKey) -> Result:
        obj = widgets.store.get(key)
        if obj is None:
            return Result()
        meta = obj["metadata"]
        name = f"{key.name}-config"
        if configmaps.store.get(ObjectKey(key.namespace, name)) is None:
            owner = {
                "apiVersion": API_VERSION,
                "kind": "Widget",
                "name": key.name,
                "uid": meta["uid"],
                "controller": True,
            }
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": key.namespace, "ownerReferences": [owner]},
                "data": {"size": str(obj["spec"]["size"])},
            }
            try:
                await client.create(CONFIGMAPS, body)
            except ApiError as err:
                if not err.conflict:  # already there, the cache had not seen it yet
                    raise
        status = {"observedGeneration": meta["generation"], "configMap": name}
        if obj.get("status") != status:
            await client.patch_status(WIDGETS, key, status)
        return Result()

    controller = manager.add_controller("widgets", reconcile, workers=4)
    controller.watch(widgets)
    controller.watch(configmaps, map_to_controller_owner("Widget", "example.com"))


async def converged(cluster: Cluster, names: set[str]) -> bool:
    """Every Widget has its ConfigMap and a status for its current generation."""
    items = await cluster.client.list(API_VERSION, "Widget", NS)
    configmaps = {c["metadata"]["name"] for c in await cluster.client.list("v1", "ConfigMap", NS)}
    return {o["metadata"]["name"] for o in items} == names and all(
        (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
        and f"{o['metadata']['name']}-config" in configmaps
        for o in items
    )


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
        build(manager)
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
