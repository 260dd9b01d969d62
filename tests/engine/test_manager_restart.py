"""A Manager across an API server restart from an earlier storage backup (lower versions).

The restarted server is behind the versions the manager's informers hold: a plain watch from
them would wait quietly (kube-apiserver keeps it open until its store catches up) and new objects
would never reach the cache. The informers must notice (the one-item LIST at their version is
refused with "too large resource version"), relist once each and carry on; ``/readyz`` must say
not ready while they cannot list or watch.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from kaito.cluster import Controllers, MemoryStorage
from kaito.engine import Manager
from tests.engine.clusterkit import (
    CONFIGMAPS,
    NS,
    WIDGET_CRD,
    WIDGETS,
    ServerInTask,
    StepClock,
    build_widget_operator,
    converged,
    engine_client,
    server_until,
    widget,
)

pytestmark = pytest.mark.anyio


async def test_manager_relists_once_after_a_restart_from_a_backup_and_is_not_ready_meanwhile() -> (
    None
):
    clock = StepClock()
    names = {"w0", "w1", "w2"}
    server = ServerInTask()
    async with httpx.AsyncClient(timeout=5) as http, anyio.create_task_group() as servers:
        first = await server.start(
            servers, controllers=Controllers.api_only(), crds=[WIDGET_CRD], bookmark_interval=0.2
        )
        await first.create_namespace(NS)
        for name in sorted(names):
            await first.client.create(widget(name, NS))
        async with engine_client(first) as client, anyio.create_task_group() as tg:
            manager = Manager(client, probe_address=("127.0.0.1", 0), clock=clock)
            build_widget_operator(manager)
            tg.start_soon(manager.run)
            await server_until(first, lambda: converged(first, names))
            backup = first.store.backup()
            for name in ("lost0", "lost1"):  # versions the manager sees and the backup lacks
                await first.client.create(widget(name, NS))
            await server_until(first, lambda: converged(first, names | {"lost0", "lost1"}))
            probes = f"http://127.0.0.1:{manager.probe_port}"
            assert (await http.get(f"{probes}/readyz")).status_code == 200
            widgets = manager.informer(WIDGETS, namespace=NS)
            configmaps = manager.informer(CONFIGMAPS, namespace=NS)
            seen = int(widgets.resource_version or 0)
            assert seen > backup.rv

            # The server goes away: both informers fail to resume and back off.
            await server.stop()
            await clock.next_sleep()
            await clock.next_sleep()
            down = await http.get(f"{probes}/readyz")
            assert down.status_code == 500
            assert "list/watch failing for" in down.text
            assert set(manager.informers.failures) == {"widgets.v1.example.com", "configmaps.v1"}

            restarted = await ServerInTask().start(
                servers, port=first.port, store=MemoryStorage.restore(backup), bookmark_interval=0.2
            )
            assert restarted.store.resource_version < seen
            clock.auto_advance = True  # the backoffs are over: retry now
            clock.advance(60)
            await restarted.client.create(widget("after", NS))
            await server_until(restarted, lambda: converged(restarted, names | {"after"}))
            assert (await http.get(f"{probes}/readyz")).status_code == 200
            manager.stop()
        servers.cancel_scope.cancel()
    for informer in (widgets, configmaps):
        assert informer.stats["relists"] == 1, informer.resource
        assert informer.failure is None
    assert {o["metadata"]["name"] for o in widgets.store.list(NS)} == names | {"after"}
    assert {o["metadata"]["name"] for o in configmaps.store.list(NS)} == {
        f"{name}-config" for name in names | {"after"}
    }
