"""The ``aks`` backend through the real ``ContainerServiceClient`` and the real
``DefaultAzureCredential``, against the AKS emulator: identities, the agent pool it writes,
ARM's errors as Protocol errors with a fix, backoff as ARM asks, adoption, paging."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import anyio
import attrs
import pytest
import structlog

from kaito.cluster import AzureEmulator, AzureTimes, BootTimes, azure_emulator, start_cluster
from kaito.cluster._azure._pools import AgentPool
from kaito.engine import KubeClient, load_client
from kaito_provisioners import NodeRequest, NodeSetStatus, ProvisioningError
from kaito_provisioners.aks import AksProvisioner, AksSettings
from kaito_provisioners.reasons import FIXES

pytestmark = pytest.mark.anyio

TIMES = AzureTimes(create=0.05, update=0.02, delete=0.05, boot=BootTimes(0.05, 0.05))
SKU = "Standard_NC24ads_A100_v4"


@attrs.define
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Aks:
    azure: AzureEmulator
    kube: KubeClient
    clock: Clock
    made: list[AksProvisioner] = attrs.field(factory=list)

    def settings(self, **changes: Any) -> AksSettings:
        base = AksSettings(
            subscription_id=self.azure.subscription_id,
            resource_group=self.azure.resource_group,
            cluster_name=self.azure.cluster_name,
            arm_endpoint=self.azure.arm_url,
            connection_verify=str(self.azure.ca_file),
            poll_interval=0.05, lro_wait=0.3, human_retry=60.0, failed_pool_retry=5.0,
            conflict_retry=5.0, throttle_retry=5.0, join_timeout=30.0, gc_grace=0.0,
            clock=self.clock,
        )  # fmt: skip
        return attrs.evolve(base, **changes)

    def provisioner(self, **changes: Any) -> AksProvisioner:
        made = AksProvisioner(self.settings(**changes), self.kube)
        self.made.append(made)
        return made


@pytest.fixture
async def aks(tmp_path: Path) -> AsyncIterator[Aks]:
    """The emulator, with the manager's identity as workload identity sets it in a pod."""
    async with start_cluster() as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        kube = await load_client(str(tmp_path / "kubeconfig"))
        try:
            async with azure_emulator(cluster, times=TIMES) as azure:
                env = azure.env(workload_identity=True)
                with patch.dict(
                    os.environ, {k: v for k, v in env.items() if k.startswith("AZURE_")}
                ):
                    harness = Aks(azure, kube, Clock())
                    try:
                        yield harness
                    finally:
                        for made in harness.made:
                            await made.aclose()
        finally:
            await kube.close()


def request_for(workspace: str = "ws1", **changes: Any) -> NodeRequest:
    return attrs.evolve(
        NodeRequest(workspace, "default", SKU, 1, labels={"apps": "phi-3"}), **changes
    )


async def until(provisioner: AksProvisioner, request: NodeRequest, *, ready: bool = True,
                reason: str | None = None, within: float = 10.0) -> NodeSetStatus:  # fmt: skip
    """Call ``ensure`` as the controller does (every 50 ms here) until the wanted outcome."""
    last = None
    with anyio.fail_after(within):
        while True:
            last = await provisioner.ensure(request)
            if reason is not None and last.error is not None and last.error.reason == reason:
                return last
            if reason is None and ready and last.ready_names:
                return last
            await anyio.sleep(0.05)


async def test_the_real_credential_and_client_create_a_pool_shaped_as_gpu_provisioner(
    aks: Aks,
) -> None:
    provisioner = aks.provisioner()
    request = request_for(node_image_family="azurelinux", disk_gib=123.4)
    status = await until(provisioner, request)
    assert aks.azure.tenant.issued[aks.azure.client_id] >= 1  # a token from the Entra emulator
    assert set(aks.azure.api_versions) == {"2026-08-01"}  # what this SDK sends
    (name,) = request.names()
    props = aks.azure.pools[name].properties
    assert props["vmSize"] == SKU and props["count"] == 1 and props["osType"] == "Linux"
    assert props["osSKU"] == "AzureLinux" and props["osDiskSizeGB"] == 124
    assert props["type"] == "VirtualMachineScaleSets"
    assert props["nodeTaints"] == ["sku=gpu:NoSchedule"]
    labels = props["nodeLabels"]
    assert {k: labels[k] for k in ("karpenter.sh/nodepool", "kaito.sh/workspace",
                                   "kaito.sh/workspacenamespace", "kaito.sh/machine-type",
                                   "apps")} == {
        "karpenter.sh/nodepool": "kaito", "kaito.sh/workspace": "ws1",
        "kaito.sh/workspacenamespace": "default", "kaito.sh/machine-type": "gpu",
        "apps": "phi-3",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", labels["kaito.sh/creation-timestamp"])
    # The SDK followed the long-running operation, and the Node joined as AKS labels it.
    assert aks.azure.requests["GET operations"] >= 1
    (node,) = status.nodes
    assert node.ready and node.node_name.startswith(f"aks-{name}-") and node.claim_ready
    joined = await aks.kube.list(
        attrs.evolve(_nodes(), namespaced=False), label_selector=f"agentpool={name}"
    )
    (item,) = joined.items
    assert item["metadata"]["labels"]["kubernetes.azure.com/agentpool"] == name
    assert item["metadata"]["labels"]["node.kubernetes.io/instance-type"] == SKU
    assert item["spec"]["providerID"].startswith("azure:///subscriptions/")
    assert {"key": "sku", "value": "gpu", "effect": "NoSchedule"} in item["spec"]["taints"]
    assert item["status"]["capacity"]["nvidia.com/gpu"] == "1"


def _nodes() -> Any:
    from kaito_provisioners._nodes import NODES

    return NODES


async def test_a_client_secret_from_the_environment_works_too(
    aks: Aks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", aks.azure.client_secret)
    await until(aks.provisioner(), request_for())
    assert aks.azure.tenant.issued[aks.azure.client_id] == 1


async def test_a_wrong_secret_is_named_with_its_fix_and_never_shown(
    aks: Aks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret-value-0123")
    with structlog.testing.capture_logs() as logs:
        status = await aks.provisioner().ensure(request_for())
    assert status.error is not None and status.error.reason == "AzureAuthenticationFailed"
    assert "AADSTS7000215" in status.error.message
    assert FIXES["AzureAuthenticationFailed"] in status.error.message
    assert "not-the-secret-value-0123" not in status.error.message
    assert "not-the-secret-value-0123" not in repr(logs)
    assert not status.error.retryable and status.error.retry_after == 60.0


async def test_a_missing_role_assignment_names_the_action_and_the_role(aks: Aks) -> None:
    aks.azure.revoke(aks.azure.client_id)
    status = await aks.provisioner().ensure(request_for())
    assert status.error is not None and status.error.reason == "AzureAuthorizationFailed"
    assert "agentPools/read" in status.error.message
    assert "--role Contributor --scope" in status.error.message
    assert not status.error.retryable


async def test_a_wrong_cluster_is_named(aks: Aks) -> None:
    status = await aks.provisioner(cluster_name="not-my-cluster").ensure(request_for())
    assert status.error is not None and status.error.reason == "ClusterNotFound"
    assert "not-my-cluster" in status.error.message
    assert "--azure-cluster-name" in status.error.message


async def test_api_version_drift_is_named(aks: Aks) -> None:
    aks.azure.served_api_versions = ("2024-05-01",)
    status = await aks.provisioner().ensure(request_for())
    assert status.error is not None and status.error.reason == "UnsupportedAPIVersion"
    assert "2026-08-01" in status.error.message


async def test_throttling_waits_as_long_as_arm_asks_without_calling_it(aks: Aks) -> None:
    provisioner = aks.provisioner()
    aks.azure.faults.add("throttle", times=1, retry_after=30)
    status = await provisioner.ensure(request_for())
    assert status.error is not None and status.error.reason == "Throttled"
    assert status.error.retry_after == 30
    sent = sum(aks.azure.requests.values())
    aks.clock.now += 29
    again = await provisioner.ensure(request_for("ws2"))  # ARM throttles the subscription
    assert again.error is not None and again.error.reason == "Throttled"
    assert again.error.retry_after == pytest.approx(1)
    assert sum(aks.azure.requests.values()) == sent  # nothing was sent meanwhile
    aks.clock.now += 1
    await until(provisioner, request_for())


async def test_a_conflicting_operation_is_retried_after_its_backoff(aks: Aks) -> None:
    provisioner = aks.provisioner()
    aks.azure.faults.add("conflict", times=1)
    status = await provisioner.ensure(request_for())
    assert status.error is not None and status.error.reason == "OperationInProgress"
    assert "in progress upgrade managed cluster operation" in status.error.message
    assert status.error.retry_after == 5.0
    puts = aks.azure.requests["PUT agentPools"]
    await provisioner.ensure(request_for())
    assert aks.azure.requests["PUT agentPools"] == puts  # still backing off
    aks.clock.now += 5
    await until(provisioner, request_for())


async def test_a_failed_pool_is_deleted_and_created_again(aks: Aks) -> None:
    provisioner = aks.provisioner()
    aks.azure.faults.add("pool_failed", times=1)
    status = await until(provisioner, request_for(), reason="AgentPoolFailed")
    assert status.error is not None
    assert "VMExtensionProvisioningError" in status.error.message
    assert FIXES["AgentPoolFailed"] in status.error.message
    (name,) = request_for().names()
    with anyio.fail_after(5):
        while name in aks.azure.pools:  # KAITO deleted it
            await anyio.sleep(0.02)
    aks.clock.now += 5
    await until(provisioner, request_for())
    assert aks.azure.created[name] == 2


async def test_a_restarted_manager_adopts_a_pool_being_created(aks: Aks) -> None:
    aks.azure.times = attrs.evolve(aks.azure.times, create=0.6)
    first = aks.provisioner(lro_wait=0.05)
    status = await first.ensure(request_for())
    assert status.nodes[0].message.endswith("is Creating")
    second = aks.provisioner()  # a new process: no poller, no memory
    adopted = await second.ensure(request_for())
    assert not adopted.ready_names and adopted.error is None
    await until(second, request_for())
    (name,) = request_for().names()
    assert aks.azure.requests["PUT agentPools"] == 1 and aks.azure.created[name] == 1


async def test_a_node_that_never_joins_replaces_the_pool(aks: Aks) -> None:
    provisioner = aks.provisioner(join_timeout=10.0, failed_pool_retry=1.0)
    aks.azure.faults.add("never_join", times=1)
    status = await provisioner.ensure(request_for())
    with anyio.fail_after(5):
        while not status.nodes or "waiting for its node" not in status.nodes[0].message:
            await anyio.sleep(0.05)
            status = await provisioner.ensure(request_for())
    aks.clock.now += 10
    status = await provisioner.ensure(request_for())
    assert status.error is not None and status.error.reason == "ProvisioningTimeout"
    aks.clock.now += 1
    await until(provisioner, request_for())


async def test_a_node_without_its_device_plugin_is_not_ready(aks: Aks) -> None:
    provisioner = aks.provisioner()
    aks.azure.faults.add("no_device_plugin")
    with anyio.fail_after(5):
        while True:
            status = await provisioner.ensure(request_for())
            if status.nodes and status.nodes[0].reason == "NodePluginsNotReady":
                break
            await anyio.sleep(0.05)
    assert "device plugin" in status.nodes[0].message and not status.ready_names


async def test_release_and_garbage_collection_page_through_the_pools(aks: Aks) -> None:
    aks.azure.page_size = 2
    provisioner = aks.provisioner()
    for workspace in ("a", "b", "c"):
        await until(provisioner, request_for(workspace))
    aks.azure.pools["nodepool1"] = AgentPool(
        "nodepool1", {"vmSize": "Standard_D4s_v5", "count": 3, "mode": "System"}, "Succeeded"
    )
    await release(provisioner, "a")
    assert aks.azure.requests["GET agentPools (list)"] >= 2  # followed nextLink
    # c's Workspace is gone, b's exists, nodepool1 is not KAITO's.
    assert await provisioner.collect_garbage(lambda ns, name: name == "b") == 1
    with anyio.fail_after(5):
        while set(aks.azure.pools) != {"nodepool1", request_for("b").names()[0]}:
            await anyio.sleep(0.05)


async def release(provisioner: AksProvisioner, workspace: str) -> None:
    """Release as the finalizer does: again while deletions run."""
    with anyio.fail_after(5):
        while True:
            try:
                await provisioner.release("default", workspace)
                return
            except ProvisioningError as err:
                if err.reason != "NodesDeleting":
                    raise
                await anyio.sleep(0.05)
