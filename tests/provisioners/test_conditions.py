"""What the Workspace's node conditions say, from what a backend reported (pure functions, as
upstream's gpu-provisioner mode sets them): ``NodeClaimReady`` follows the claims,
``NodesReady`` the Nodes (``NodePluginsNotReady`` while the device plugin is missing),
``ResourceReady`` the claims' reason first, then the nodes'."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.api import structure_lenient
from kaito.api.v1beta1 import Workspace
from kaito.controllers import NodeObservation, compute_status, ensure_nodes
from kaito_provisioners import NodeRequest, NodeSetStatus, ProvisionedNode, ProvisioningError
from tests.provisioners.conftest import example

T0 = "2026-11-29T00:00:00Z"


def workspace(**annotations: str) -> Workspace:
    doc = example("inference/kaito_workspace_phi_3.yaml")
    doc["apiVersion"] = "kaito.sh/v1beta1"
    doc["metadata"].update(namespace="default", generation=1, uid="u1", annotations=annotations)
    ws, _ = structure_lenient(doc, Workspace)
    return ws


def conditions(nodes: NodeObservation) -> dict[str, tuple[str, str]]:
    status = compute_status(workspace(), nodes, now=T0)
    return {c.type: (c.status, c.reason) for c in status.conditions or ()}


class Reporting:
    """A backend that reports what it is told to."""

    def __init__(self, status: NodeSetStatus) -> None:
        self.status = status
        self.requests: list[NodeRequest] = []

    async def ensure(self, request: NodeRequest) -> NodeSetStatus:
        self.requests.append(request)
        return self.status

    async def release(self, namespace: str, workspace: str) -> None:
        return None


async def observe(status: NodeSetStatus) -> NodeObservation:
    return await ensure_nodes(workspace(), 1, [], Reporting(status), disk_gib=80.0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (ProvisionedNode("ws1", False, message="agent pool ws1 is Creating",
                         reason="NodeClaimNotReady", claim_ready=False),
         {"NodeClaimReady": ("False", "NodeClaimNotReady"), "NodesReady": ("False", "NodeNotReady"),
          "ResourceReady": ("False", "NodeClaimNotReady")}),
        (ProvisionedNode("ws1", False, node_name="aks-ws1-1-vmss000000", message="not Ready",
                         reason="NodeNotReady", claim_ready=True),
         {"NodeClaimReady": ("True", "NodeClaimsReady"), "NodesReady": ("False", "NodeNotReady"),
          "ResourceReady": ("False", "NodeNotReady")}),
        (ProvisionedNode("ws1", False, node_name="aks-ws1-1-vmss000000", message="no GPUs yet",
                         reason="NodePluginsNotReady", claim_ready=True),
         {"NodeClaimReady": ("True", "NodeClaimsReady"),
          "NodesReady": ("False", "NodePluginsNotReady"),
          "ResourceReady": ("False", "NodePluginsNotReady")}),
        (ProvisionedNode("ws1", True, node_name="aks-ws1-1-vmss000000", claim_ready=True),
         {"NodeClaimReady": ("True", "NodeClaimsReady"), "NodesReady": ("True", "NodesReady"),
          "ResourceReady": ("True", "workspaceResourceStatusSuccess")}),
    ],
    ids=["claim-pending", "node-not-ready", "device-plugin-missing", "ready"],
)  # fmt: skip
async def test_conditions_follow_the_claims_then_the_nodes(
    node: ProvisionedNode, expected: dict[str, Any]
) -> None:
    observed = await observe(NodeSetStatus((node,), recheck_after=0.5))
    got = conditions(observed)
    assert {k: got[k] for k in expected} == expected
    assert observed.retry_after == 0.5  # the backend's cadence
    if node.ready:
        assert observed.ready_nodes == ("aks-ws1-1-vmss000000",)  # the Node's name, not the pool's


@pytest.mark.anyio
async def test_a_provisioning_error_names_its_reason_everywhere_with_its_wait() -> None:
    error = ProvisioningError("Throttled", "ARM answered 429 (retrying in 7s)",
                              fix="KAITO waits as told", retry_after=7.0)  # fmt: skip
    observed = await observe(NodeSetStatus((), error))
    assert observed.retry_after == 7.0
    got = conditions(observed)
    assert got["NodeClaimReady"] == ("False", "Throttled")
    assert got["ResourceReady"] == ("False", "Throttled")
    status = compute_status(workspace(), observed, now=T0)
    (resource,) = [c for c in status.conditions or () if c.type == "ResourceReady"]
    assert resource.message.endswith("ARM answered 429 (retrying in 7s); KAITO waits as told")


@pytest.mark.anyio
async def test_the_request_carries_the_workspaces_node_class_and_image_family() -> None:
    backend = Reporting(NodeSetStatus())
    ws = workspace(
        **{"kaito.sh/node-class-name": "gpu-azl", "kaito.sh/node-image-family": "azurelinux"}
    )
    await ensure_nodes(ws, 1, [], backend, disk_gib=80.0)
    (request,) = backend.requests
    assert (request.node_class, request.node_image_family) == ("gpu-azl", "azurelinux")
    plain = Reporting(NodeSetStatus())
    await ensure_nodes(workspace(), 1, [], plain, disk_gib=80.0)
    assert plain.requests[0].node_image_family == ""  # the backend's default applies
