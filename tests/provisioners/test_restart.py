"""A manager killed at a write of provisioning (or, in the slow matrix, at every write of a
Workspace's life), then restarted with a fresh provisioner, adopts what exists and creates
nothing twice; a deletion cut the same way leaves nothing behind.

Kubernetes writes are cut before they are sent (the client wrapper). ARM writes are cut two
ways: before they leave the SDK (a policy in the real ``ContainerServiceClient`` pipeline) and
after ARM applied them but before the manager saw the answer (the emulator's write hook).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import attrs
import pytest
from azure.core.pipeline.policies import AsyncHTTPPolicy

from kaito.engine import KubeClient
from tests.provisioners.conftest import (
    Backend,
    example,
    get_ws,
    running_backend,
    running_manager,
    wait_for,
)

pytestmark = pytest.mark.anyio

KUBE_WRITES = ("create", "patch", "patch_status", "delete", "replace")
PROVISIONING_RESOURCES = ("nodes", "nodeclaims")
Scope = Literal["provisioning", "all"]


@attrs.define
class Cut:
    """Counts writes (of provisioning only, or all) and kills the manager at the ``limit``-th.

    ``arm`` says how an ARM write is cut: ``before`` it leaves the SDK, or ``after`` ARM applied
    it (the answer never reaches the manager).
    """

    limit: int
    scope: Scope
    arm: Literal["before", "after"] = "before"
    writes: int = 0
    fired: bool = False
    manager: anyio.CancelScope | None = None

    def count(self, provisioning: bool) -> bool:
        """Count a write; True when it is the one to cut at."""
        if self.fired or (self.scope == "provisioning" and not provisioning):
            return False
        self.writes += 1
        if self.writes < self.limit:
            return False
        self.fired = True
        assert self.manager is not None
        self.manager.cancel()
        return True


class CutKube:
    """The manager's Kubernetes client, cut before the chosen write is sent."""

    def __init__(self, inner: KubeClient, cut: Cut) -> None:
        self.inner = inner
        self.cut = cut

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in KUBE_WRITES:
            return attr

        async def write(resource: Any, *args: Any, **kwargs: Any) -> Any:
            if self.cut.count(resource.plural in PROVISIONING_RESOURCES):
                await anyio.lowlevel.checkpoint()  # cancelled here: never sent
            return await attr(resource, *args, **kwargs)

        return write


class CutArmPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """In the SDK's pipeline: cut before a PUT or DELETE leaves the process."""

    def __init__(self, cut: Cut) -> None:
        super().__init__()
        self.cut = cut

    async def send(self, request: Any) -> Any:
        method = request.http_request.method
        if method in ("PUT", "DELETE") and self.cut.arm == "before" and self.cut.count(True):
            await anyio.lowlevel.checkpoint()
        return await self.next.send(request)


def _wire(backend: Backend, cut: Cut) -> Callable[[anyio.CancelScope], Any]:
    """Wrap the manager's client and the backend's ARM client for ``cut``."""
    if backend.azure is not None:

        async def after_write(method: str, pool: str) -> None:
            if cut.arm == "after":
                cut.count(True)

        backend.azure.after_write = after_write

    def wrap(scope: anyio.CancelScope) -> Any:
        cut.manager = scope
        return CutKube(backend.kube, cut)

    return wrap


def _aks_with_cut(backend: Backend, cut: Cut) -> None:
    """Make the next AKS provisioner carry the cutting policy in its SDK pipeline."""
    backend.next_client_options = {"per_call_policies": [CutArmPolicy(cut)]}


async def _ready(backend: Backend, name: str) -> bool:
    ws = await get_ws(backend, name)
    return ((ws or {}).get("status") or {}).get("state") == "Ready"


async def _gone(backend: Backend, name: str) -> bool:
    return await get_ws(backend, name) is None


async def _claim_ids(backend: Backend, name: str) -> set[str]:
    """Identities of the claims of ``name``: a claim created twice gets a new one (ARM counts
    its creations; a NodeClaim or fake Node recreated gets a new uid)."""
    if backend.azure is not None:
        return {
            f"{n}#{backend.azure.created[n]}"
            for n, p in backend.azure.pools.items()
            if p.workspace == name
        }
    api, kind = ("karpenter.sh/v1", "NodeClaim") if backend.karpenter else ("v1", "Node")
    found = await backend.cluster.client.list(
        api, kind, label_selector=f"kaito.sh/workspace={name},karpenter.sh/nodepool=kaito"
    )
    return {o["metadata"]["uid"] for o in found}


async def _cut_and_restart(backend: Backend, name: str, cut: Cut) -> bool:
    """One Workspace through a cut manager and a fresh one; False when the cut never fired."""
    await backend.cluster.client.create(
        example("inference/kaito_workspace_phi_3.yaml", name), namespace="default"
    )
    if backend.azure is not None:
        _aks_with_cut(backend, cut)
    async with running_manager(backend, _wire(backend, cut)):
        with anyio.move_on_after(20):
            await wait_for(lambda: _ready(backend, name), within=20)
    fired = cut.fired
    before = await _claim_ids(backend, name)
    async with running_manager(backend):
        await wait_for(lambda: _ready(backend, name), what=f"{name} ready after the restart")
        assert len(await backend.claims(name)) == 1
        assert len(await backend.nodes(name)) == 1
        after = await _claim_ids(backend, name)
        assert before <= after, f"a claim was created again: {before} -> {after}"
        if backend.azure is not None:
            assert all(i.endswith("#1") for i in after), f"an agent pool was created twice: {after}"
    # Deletion, cut at the same point, then finished by a fresh manager: nothing is left.
    deletion = attrs.evolve(cut, writes=0, fired=False)
    await backend.cluster.client.delete("kaito.sh/v1beta1", "Workspace", name, "default")
    if backend.azure is not None:
        _aks_with_cut(backend, deletion)
    async with running_manager(backend, _wire(backend, deletion)):
        with anyio.move_on_after(20):
            await wait_for(lambda: _gone(backend, name), within=20)
    async with running_manager(backend):
        await wait_for(lambda: _gone(backend, name), what=f"{name} deleted after the restart")
        await wait_for(lambda: _no_claims(backend, name), what=f"{name}'s claims gone")
    assert await backend.nodes(name) == []
    return fired or deletion.fired


async def _no_claims(backend: Backend, name: str) -> bool:
    return not await backend.claims(name) and not await backend.nodes(name)


async def test_cut_at_the_provisioning_write_then_restart(backend: Backend) -> None:
    # ARM writes are cut both ways: before they leave the SDK, and after ARM applied them.
    for arm in ("before", "after") if backend.azure is not None else ("before",):
        cut = Cut(1, "provisioning", arm=arm)  # type: ignore[arg-type]
        assert await _cut_and_restart(backend, f"cut-{arm}", cut)
        assert cut.fired


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "arm"),
    [("fake", "before"), ("aks", "before"), ("aks", "after"), ("karpenter", "before")],
)
async def test_cut_at_every_write_then_restart(
    name: str, arm: Literal["before", "after"], tmp_path: Path
) -> None:
    async with running_backend(name, tmp_path) as backend:
        cuts = 0
        for limit in range(1, 60):
            if not await _cut_and_restart(backend, f"ws-{limit}", Cut(limit, "all", arm=arm)):
                break  # the whole life took fewer writes than the limit: every cut was tried
            cuts += 1
        assert cuts >= 5, f"only {cuts} cut points were exercised"
