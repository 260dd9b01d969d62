"""The KAITO manager across an API server restart from an earlier backup (issue 13).

The restored server hands out resourceVersions below the ones the manager's informers hold.
Before the fix they resumed their watches from those versions and never relisted, so a Workspace
created after the restart never got a status, while ``/readyz`` said 200 throughout.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from kaito.api import workspace_crd
from kaito.cluster import Cluster, MemoryStorage
from kaito.controllers import add_workspace_controller
from kaito.engine import Backoff, Manager, load_client
from kaito.operator import controller_settings
from kaito.options import ManagerOptions
from kaito_provisioners.fake import FakeProvisioner
from tests.embedded.conftest import WS_API, conditions, example
from tests.engine.clusterkit import ServerInTask, server_until

pytestmark = pytest.mark.anyio


def workspace(name: str) -> dict[str, Any]:
    doc = example("inference/kaito_workspace_phi_3.yaml")
    doc["metadata"]["name"] = name
    return doc


async def ready(cluster: Cluster, *names: str) -> bool:
    """Every named Workspace exists and says WorkspaceReady=True."""
    items = {w["metadata"]["name"]: w for w in await cluster.client.list(WS_API, "Workspace")}
    return all(
        name in items and conditions(items[name]).get("WorkspaceReady", {}).get("status") == "True"
        for name in names
    )


async def test_new_workspaces_get_status_after_the_api_server_comes_back_from_a_backup(
    tmp_path: Any,
) -> None:
    server = ServerInTask()
    async with httpx.AsyncClient(timeout=5) as http, anyio.create_task_group() as servers:
        first = await server.start(servers, crds=[workspace_crd()])
        first.write_kubeconfig(tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        try:
            async with anyio.create_task_group() as tg:
                manager = Manager(client, name="kaito-test", probe_address=("127.0.0.1", 0))
                add_workspace_controller(
                    manager, client, FakeProvisioner(client), controller_settings(ManagerOptions())
                )
                for informer in manager.informers.informers:
                    informer.backoff = Backoff(initial=0.01, cap=0.05)
                tg.start_soon(manager.run)
                await first.client.create(workspace("before"), namespace="default")
                await server_until(first, lambda: ready(first, "before"), within=20)
                backup = first.store.backup()
                await first.client.create(workspace("lost"), namespace="default")
                await server_until(first, lambda: ready(first, "lost"), within=20)

                await server.stop()
                restarted = await ServerInTask().start(
                    servers, port=first.port, store=MemoryStorage.restore(backup)
                )
                await restarted.client.create(workspace("after"), namespace="default")
                await server_until(
                    restarted, lambda: ready(restarted, "before", "after"), within=20
                )
                probes = f"http://127.0.0.1:{manager.probe_port}"
                assert (await http.get(f"{probes}/readyz")).status_code == 200
                manager.stop()
        finally:
            await client.close()
        servers.cancel_scope.cancel()
    relists = {str(i.resource): i.stats["relists"] for i in manager.informers.informers}
    # The Workspace informer saw "lost" (it reconciled it), so its version is past the backup and it
    # must relist. Others relist only if an event after the backup reached them before the stop
    # (the fake node for "lost" may not have); either way none relists more than once.
    assert relists["workspaces.v1beta1.kaito.sh"] == 1, relists
    assert set(relists.values()) <= {0, 1}, relists
