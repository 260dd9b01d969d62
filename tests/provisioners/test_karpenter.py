"""The NodeClaim backends against Karpenter's own NodeClaim CRD (the in-process API server
validates and defaults them) and the simulated Karpenter: the NodeClaim as upstream writes it,
the NodeClass flags, the NodeClaimReady and NodePluginsNotReady conditions, the termination
finalizer, launch errors, and garbage collection of NodeClaims whose Workspace is gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from kaito.cluster import StatusError
from kaito.engine import Manager
from kaito.operator import build_operator, make_provisioner
from kaito.options import ManagerOptions
from kaito_provisioners import NodeRequest, ProvisioningError
from kaito_provisioners.karpenter import (
    KarpenterSettings,
    NodeClaimProvisioner,
    nodeclaim_manifest,
    parse_node_classes,
)
from tests.provisioners.conftest import (
    Backend,
    conditions,
    example,
    running_backend,
    running_manager,
    wait_condition,
    wait_for,
)

pytestmark = pytest.mark.anyio

API = "karpenter.sh/v1"
SKU = "Standard_NC24ads_A100_v4"


@pytest.fixture
async def karpenter(tmp_path: Path) -> Any:
    async with running_backend("karpenter", tmp_path) as backend:
        yield backend


def request_for(workspace: str = "ws1", **changes: Any) -> NodeRequest:
    base = NodeRequest(workspace, "default", SKU, 1, labels={"apps": "phi-3"}, disk_gib=80)
    return attrs.evolve(base, **changes)


async def test_the_nodeclaim_is_upstreams_and_passes_karpenters_schema(karpenter: Backend) -> None:
    provisioner = NodeClaimProvisioner(karpenter.kube, KarpenterSettings.gpu_provisioner("azure"))
    await provisioner.ensure(request_for())
    (name,) = request_for().names()
    claim = await karpenter.cluster.client.get(API, "NodeClaim", name)
    assert claim["spec"]["expireAfter"] == "720h"  # defaulted by the CRD's schema
    assert claim["metadata"]["labels"].items() >= {
        "karpenter.sh/nodepool": "kaito", "kaito.sh/workspace": "ws1",
        "kaito.sh/workspacenamespace": "default", "apps": "phi-3",
    }.items()  # fmt: skip
    assert claim["metadata"]["annotations"] == {
        "karpenter.sh/do-not-disrupt": "true", "kaito.sh/node-image-family": "ubuntu",
    }  # fmt: skip
    spec = claim["spec"]
    assert spec["nodeClassRef"] == {
        "group": "kaito.sh",
        "kind": "KaitoNodeClass",
        "name": "default",
    }
    assert spec["taints"] == [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}]
    assert spec["resources"] == {"requests": {"storage": "80Gi"}}
    assert spec["requirements"] == [
        {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["kaito"]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [SKU]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        {"key": "karpenter.azure.com/sku-name", "operator": "In", "values": [SKU]},
    ]


async def test_an_aws_nodeclaim_passes_the_schema_too(karpenter: Backend) -> None:
    manifest = nodeclaim_manifest(request_for(instance_type="p5.48xlarge"), "ws0000000aw",
                                  KarpenterSettings.gpu_provisioner("aws"))  # fmt: skip
    created = await karpenter.cluster.client.create(manifest)
    assert created["spec"]["nodeClassRef"]["kind"] == "EC2NodeClass"
    assert created["spec"]["requirements"][-1] == {
        "key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["requirements"][0].update(operator="Equals"),
         'spec.requirements[0].operator: Unsupported value: "Equals": supported values: "In", '
         '"NotIn", "Exists", "DoesNotExist", "Gt", "Lt"'),
        (lambda s: s.pop("nodeClassRef"), "spec.nodeClassRef: Required value"),
        (lambda s: s["taints"][0].update(effect="Sometimes"),
         'spec.taints[0].effect: Unsupported value: "Sometimes"'),
        (lambda s: s["requirements"].extend([s["requirements"][0]] * 100),
         "spec.requirements: Too many: 104: must have at most 100 items"),
    ],
    ids=["operator", "nodeClassRef", "taint-effect", "too-many-requirements"],
)  # fmt: skip
async def test_the_schema_refuses_what_karpenter_refuses(
    karpenter: Backend, change: Any, message: str
) -> None:
    manifest = nodeclaim_manifest(request_for(), "ws0000000bd", KarpenterSettings())
    change(manifest["spec"])
    with pytest.raises(StatusError) as refused:
        await karpenter.cluster.client.create(manifest)
    assert refused.value.code == 422
    assert message in refused.value.message


def test_karpenter_mode_takes_the_node_class_from_upstreams_flags() -> None:
    classes = json.dumps([{"name": "gpu-ubuntu", "default": True, "spec": {}},
                          {"name": "gpu-azl", "spec": {"imageFamily": "AzureLinux"}}])  # fmt: skip
    options = ManagerOptions(node_provisioner="karpenter", karpenter_node_classes=classes,
                             karpenter_node_class_group="karpenter.azure.com",
                             karpenter_node_class_kind="AKSNodeClass")  # fmt: skip
    made = make_provisioner(options, None)  # type: ignore[arg-type]
    assert isinstance(made, NodeClaimProvisioner)
    ref = nodeclaim_manifest(request_for(), "n", made.settings)["spec"]["nodeClassRef"]
    assert ref == {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "gpu-ubuntu"}
    chosen = nodeclaim_manifest(request_for(node_class="gpu-azl"), "n", made.settings)
    assert chosen["spec"]["nodeClassRef"]["name"] == "gpu-azl"
    refused = nodeclaim_manifest(request_for(node_class="not-allowed"), "n", made.settings)
    assert refused["spec"]["nodeClassRef"]["name"] == "gpu-ubuntu"
    by_family = make_provisioner(ManagerOptions(node_provisioner="karpenter",
                                                default_node_image_family="azurelinux"), None)  # type: ignore[arg-type]  # fmt: skip
    assert isinstance(by_family, NodeClaimProvisioner)
    claim = nodeclaim_manifest(request_for(), "n", by_family.settings)
    assert claim["spec"]["nodeClassRef"]["name"] == "image-family-azure-linux"
    assert claim["metadata"]["annotations"]["kaito.sh/node-image-family"] == "azurelinux"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[", "parsing --karpenter-node-classes as a JSON array"),
        ("[]", "declares no NodeClasses"),
        ('[{"name": "a"}]', "must mark exactly one entry default, got 0"),
        ('[{"name": "A_b", "default": true}]', "name 'A_b' is not a valid resource name"),
        ('[{"name": "a", "default": true}, {"name": "a"}]', "declares 'a' more than once"),
    ],
)
def test_bad_node_classes_are_refused_as_upstream_does(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_node_classes(text)


async def test_nodeclaim_ready_then_node_plugins_not_ready_on_the_workspace(
    karpenter: Backend,
) -> None:
    assert karpenter.karpenter is not None
    karpenter.karpenter.faults.add("no_device_plugin", times=1)
    async with running_manager(karpenter):
        await karpenter.cluster.client.create(
            example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
        )
        ws = await wait_condition(karpenter, "workspace-phi-3-mini", "NodesReady", "False",
                                  reason="NodePluginsNotReady")  # fmt: skip
        assert conditions(ws)["NodeClaimReady"]["status"] == "True"
        assert conditions(ws)["ResourceReady"]["reason"] == "NodePluginsNotReady"
        assert "device plugin" in conditions(ws)["NodesReady"]["message"]


async def test_deletion_waits_on_karpenters_termination_finalizer(karpenter: Backend) -> None:
    provisioner = NodeClaimProvisioner(karpenter.kube)
    with anyio.fail_after(10):
        while not (await provisioner.ensure(request_for())).ready_names:
            await anyio.sleep(0.05)
    (name,) = request_for().names()
    claim = await karpenter.cluster.client.get(API, "NodeClaim", name)
    assert claim["metadata"]["finalizers"] == ["karpenter.sh/termination"]
    node = claim["status"]["nodeName"]
    with pytest.raises(ProvisioningError) as deleting:
        await provisioner.release("default", "ws1")
    assert deleting.value.reason == "NodesDeleting"
    with anyio.fail_after(10):
        while True:
            try:
                await provisioner.release("default", "ws1")
                break
            except ProvisioningError:
                await anyio.sleep(0.05)
    assert await karpenter.claims("ws1") == []
    with pytest.raises(StatusError):
        await karpenter.cluster.client.get("v1", "Node", node)


async def test_a_launch_error_is_shown_in_the_providers_words(karpenter: Backend) -> None:
    assert karpenter.karpenter is not None
    karpenter.karpenter.faults.add("launch_failed", message="creating instance, subnet is full")
    provisioner = NodeClaimProvisioner(karpenter.kube)
    with anyio.fail_after(10):
        while True:
            status = await provisioner.ensure(request_for())
            if status.error is not None:
                break
            await anyio.sleep(0.05)
    assert status.error.reason == "LaunchFailed"
    assert "creating instance, subnet is full" in status.error.message
    assert "kubectl describe nodeclaim" in status.error.message


async def test_nodeclaims_of_a_workspace_that_is_gone_are_collected_and_counted(
    karpenter: Backend,
) -> None:
    options = ManagerOptions(node_provisioner="karpenter", node_gc_interval=0.1,
                             metrics_address=None, probe_address=None)  # fmt: skip
    provisioner = make_provisioner(options, karpenter.kube)
    orphan = nodeclaim_manifest(request_for("ghost"), "ws00000ghost"[:11], KarpenterSettings())
    await karpenter.cluster.client.create(orphan)
    manager: Manager = build_operator(options, karpenter.kube, provisioner).manager
    assert "node-garbage-collector" in [c.name for c in manager.controllers]
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await wait_for(lambda: _no_claims(karpenter, "ghost"), what="the orphan collected")
        manager.stop()
    deleted = manager.registry.get_sample_value(
        "kaito_provisioner_claims_deleted_total", {"backend": "karpenter"}
    )
    assert deleted == 1.0


async def _no_claims(backend: Backend, workspace: str) -> bool:
    return await backend.claims(workspace) == []
