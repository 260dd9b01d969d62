"""Kill the manager at every write of a reconcile, start a fresh one: it converges to the same
state, with no duplicate nodes and, after deletion, no orphans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from kaito.api import workspace_crd
from kaito.cluster import Cluster, StatusError, start_cluster
from kaito.controllers import add_workspace_controller
from kaito.engine import KubeClient, Manager, load_client
from kaito.operator import controller_settings
from kaito.options import ManagerOptions
from kaito_provisioners.fake import FakeProvisioner
from tests.embedded.conftest import conditions, example

pytestmark = pytest.mark.anyio

WRITES = ("create", "patch", "patch_status", "delete")


class CutAfter:
    """Wraps a client; the ``limit``-th write cancels ``scope`` before it is sent."""

    def __init__(self, inner: KubeClient, limit: int, scope: anyio.CancelScope) -> None:
        self.inner = inner
        self.limit = limit
        self.scope = scope
        self.writes = 0
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in WRITES:
            return attr

        async def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes >= self.limit:
                self.fired = True
                self.scope.cancel()
                await (
                    anyio.lowlevel.checkpoint()
                )  # the cancellation lands here: the write is never sent
            return await attr(*args, **kwargs)

        return write


@asynccontextmanager
async def running_manager(
    real: KubeClient, wrap: Callable[[anyio.CancelScope], Any] | None = None
) -> AsyncIterator[tuple[anyio.CancelScope, Any]]:
    async with anyio.create_task_group() as tg:
        client = wrap(tg.cancel_scope) if wrap else real
        manager = Manager(real, name="kaito-test")
        add_workspace_controller(
            manager, client, FakeProvisioner(client), controller_settings(ManagerOptions())
        )
        tg.start_soon(manager.run)
        yield tg.cancel_scope, client
        tg.cancel_scope.cancel()


async def _ws(cluster: Cluster, name: str) -> dict[str, Any] | None:
    try:
        return await cluster.client.get("kaito.sh/v1beta1", "Workspace", name, "default")
    except StatusError as err:
        if err.code == 404:
            return None
        raise


async def _until(probe: Callable[[], Any], within: float = 20.0) -> None:
    with anyio.fail_after(within):
        while not await probe():
            await anyio.sleep(0.05)


async def _owned(cluster: Cluster, name: str) -> dict[str, int]:
    counts = {}
    for api, kind, ns in (
        ("v1", "Node", None),
        ("apps/v1", "StatefulSet", "default"),
        ("v1", "Service", "default"),
        ("v1", "ConfigMap", "default"),
    ):
        items = await cluster.client.list(
            api, kind, ns, label_selector=f"kaito.sh/workspace={name}"
        )
        counts[kind] = len(items)
    return counts


async def test_cut_at_every_write_then_restart_converges(tmp_path: Path) -> None:
    async with start_cluster(crds=[workspace_crd()]) as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        real = await load_client(str(tmp_path / "kubeconfig"))
        try:
            cuts = 0
            for limit in range(1, 40):
                name = f"ws-{limit}"
                doc = example("inference/kaito_workspace_phi_3.yaml")
                doc["metadata"]["name"] = name
                await cluster.client.create(doc, namespace="default")

                async def ready(name: str = name) -> bool:
                    ws = await _ws(cluster, name)
                    return bool(
                        ws and conditions(ws).get("WorkspaceReady", {}).get("status") == "True"
                    )

                # A manager killed at its limit-th write...
                wrapper: CutAfter | None = None

                def cut(scope: anyio.CancelScope, limit: int = limit) -> CutAfter:
                    nonlocal wrapper
                    wrapper = CutAfter(real, limit, scope)
                    return wrapper

                async with running_manager(real, cut) as _:
                    with anyio.move_on_after(20):
                        await _until(ready)
                assert wrapper is not None
                if not wrapper.fired:
                    break  # the whole pass took fewer writes than the limit: every cut was tried
                cuts += 1
                # ...then a fresh one converges, without duplicates.
                async with running_manager(real):
                    await _until(ready)
                    assert await _owned(cluster, name) == {
                        "Node": 1, "StatefulSet": 1, "Service": 2, "ConfigMap": 1,
                    }  # fmt: skip
                # Deletion, cut at the same point, then finished by a fresh manager: no orphans.
                await cluster.client.delete("kaito.sh/v1beta1", "Workspace", name, "default")
                async with running_manager(real, cut) as _:
                    with anyio.move_on_after(20):
                        await _until(lambda name=name: _gone(cluster, name))
                async with running_manager(real):
                    await _until(lambda name=name: _gone(cluster, name))
                assert await _owned(cluster, name) == {
                    "Node": 0, "StatefulSet": 0, "Service": 0, "ConfigMap": 0,
                }  # fmt: skip
            assert cuts >= 5, f"only {cuts} cut points were exercised"
        finally:
            await real.close()


async def _gone(cluster: Cluster, name: str) -> bool:
    return await _ws(cluster, name) is None
