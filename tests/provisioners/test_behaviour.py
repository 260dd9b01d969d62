"""The provisioning behaviour every backend owes the Workspace controller, shown for ``fake``,
``aks`` (the real SDK against the AKS emulator) and ``karpenter`` (NodeClaims the simulated
Karpenter fulfils): the guide's Workspaces reach ready, deleting them removes every claim and
Node, and quota, capacity, a failed pool and throttling show on the status with a reason and a
fix, then provisioning resumes once the fault is lifted."""

from __future__ import annotations

import pytest

from kaito_provisioners.reasons import FIXES
from tests.provisioners.conftest import (
    EXPECTED_REASON,
    Backend,
    conditions,
    example,
    finished,
    get_ws,
    running_manager,
    wait_condition,
    wait_for,
)

pytestmark = pytest.mark.anyio

GUIDE = {
    "workspace-phi-3-mini": "inference/kaito_workspace_phi_3.yaml",
    "workspace-phi-3-mini-adapter": "inference/kaito_workspace_phi_3_with_adapters.yaml",
    "workspace-tuning-phi-3": "fine-tuning/kaito_workspace_tuning_phi_3.yaml",
}


async def test_the_guide_reaches_ready_and_deletion_leaves_nothing(backend: Backend) -> None:
    async with running_manager(backend):
        for rel in GUIDE.values():
            await backend.cluster.client.create(example(rel), namespace="default")
        for name in GUIDE:
            await wait_for(lambda name=name: finished(backend, name), what=f"{name} ready")
            ws = await get_ws(backend, name)
            assert conditions(ws)["NodeClaimReady"]["reason"] == "NodeClaimsReady"
            assert conditions(ws)["NodesReady"]["reason"] == "NodesReady"
            claims, nodes = await backend.claims(name), await backend.nodes(name)
            assert len(claims) == 1 and len(nodes) == 1, (claims, nodes)
            assert (ws or {})["status"]["workerNodes"] == nodes
        if backend.azure is not None:  # the SDK's poller followed ARM's async operations
            assert backend.azure.requests["PUT agentPools"] == 3
            assert backend.azure.requests["GET operations"] >= 3
            assert sum(backend.azure.tenant.issued.values()) >= 1
        for name in GUIDE:
            await backend.cluster.client.delete(WS_API, "Workspace", name, "default")
        for name in GUIDE:
            await wait_for(lambda name=name: _gone(backend, name), what=f"{name} gone")
            assert await backend.claims(name) == []
            assert await backend.nodes(name) == []


WS_API = "kaito.sh/v1beta1"


async def _gone(backend: Backend, name: str) -> bool:
    return await get_ws(backend, name) is None


async def test_faults_show_on_status_then_provisioning_resumes(backend: Backend) -> None:
    expected = EXPECTED_REASON[backend.name]
    async with running_manager(backend):
        lifts = {}
        for fault in ("quota", "capacity", "failed"):  # at once, each scoped to its workspace
            name = f"ws-{fault}"
            lifts[fault] = backend.fail(fault, workspace=name)  # type: ignore[arg-type]
            doc = example("inference/kaito_workspace_phi_3.yaml", name)
            await backend.cluster.client.create(doc, namespace="default")
        for fault in lifts:
            reason = expected[fault]
            ws = await wait_condition(backend, f"ws-{fault}", "ResourceReady", "False",
                                      reason=reason)  # fmt: skip
            message = conditions(ws)["ResourceReady"]["message"]
            assert FIXES[reason] in message, message
            claim = conditions(ws)["NodeClaimReady"]
            assert claim["status"] == "False"
        for lift in lifts.values():
            lift()
        for fault in lifts:
            await wait_condition(backend, f"ws-{fault}", "WorkspaceReady", within=30)
        lift_throttle = backend.fail("throttle")  # a burst that ends by itself
        await backend.cluster.client.create(
            example("inference/kaito_workspace_phi_3.yaml", "ws-throttle"), namespace="default"
        )
        ws = await wait_condition(backend, "ws-throttle", "ResourceReady", "False",
                                  reason=expected["throttle"])  # fmt: skip
        assert "retrying in" in conditions(ws)["ResourceReady"]["message"]
        await wait_condition(backend, "ws-throttle", "WorkspaceReady", within=30)
        lift_throttle()
        for name in ("ws-quota", "ws-capacity", "ws-failed", "ws-throttle"):
            assert len(await backend.claims(name)) == 1, name
