"""Workspaces on several GPUs and several nodes, from applied to ready on the in-process cluster
(fake provisioner, simulated pods): the nodes provisioned, the pods placed one per node, and the
parallelism the server is started with."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.embedded import Embedded
from tests.embedded.conftest import wait_condition

pytestmark = pytest.mark.anyio

WS = "workspace-llama"


def workspace(name: str, instance_type: str, preset: str, **options: Any) -> dict[str, Any]:
    inference: dict[str, Any] = {"preset": {"name": preset}}
    if options:
        inference["preset"]["presetOptions"] = options
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name},
        "resource": {
            "instanceType": instance_type,
            "labelSelector": {"matchLabels": {"app": name}},
        },
        "inference": inference,
    }


def flag(command: list[str], name: str) -> str | None:
    """The value after ``--name`` in ``command`` (``None`` when absent)."""
    return command[command.index(name) + 1] if name in command else None


async def pods_of(kaito: Embedded, name: str) -> list[dict[str, Any]]:
    found = await kaito.cluster.client.list(
        "v1", "Pod", "default", label_selector=f"kaito.sh/workspace={name}"
    )
    return sorted(found, key=lambda p: str(p["metadata"]["name"]))


async def test_multi_node_inference_runs_a_pod_per_node(kaito: Embedded) -> None:
    """Llama-3.3-70B on one-A100 nodes: three nodes, a StatefulSet of three pods behind the
    headless Service, pipeline parallel over Ray through the launcher, each pod on its own node."""
    client = kaito.cluster.client
    doc = workspace(WS, "Standard_NC24ads_A100_v4", "llama-3.3-70b-instruct",
                    modelAccessSecret="hf-token")  # fmt: skip
    await client.create(doc, namespace="default")
    ws = await wait_condition(kaito, WS, "WorkspaceReady", within=30.0)
    assert ws["status"]["targetNodeCount"] == 3
    assert len(ws["status"]["workerNodes"]) == 3

    sts = await client.get("apps/v1", "StatefulSet", WS, "default")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == f"{WS}-headless"
    assert sts["status"]["readyReplicas"] == 3
    container = sts["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:4] == ["python", "-m", "kaito_runtime.launch", "ray"]
    assert flag(command, "--nodes") == "3"
    assert flag(command, "--leader-address") == f"{WS}-0.{WS}-headless.default.svc.cluster.local"
    server = command[command.index("--") + 1 :]
    assert server[:3] == ["python", "-m", "kaito_runtime.inference"]
    assert flag(server, "--pipeline-parallel-size") == "3"
    assert flag(server, "--tensor-parallel-size") == "1"
    assert flag(server, "--distributed-executor-backend") == "ray"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
    assert "exec" in container["readinessProbe"]

    headless = await client.get("v1", "Service", f"{WS}-headless", "default")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    pods = await pods_of(kaito, WS)
    assert [p["metadata"]["name"] for p in pods] == [f"{WS}-0", f"{WS}-1", f"{WS}-2"]
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert nodes == set(ws["status"]["workerNodes"])  # one pod per node, on the Workspace's nodes


@pytest.mark.parametrize(
    ("instance_type", "preset", "gpus", "flags"),
    [
        # Phi-3 fits one A100 with room to spare: one replica per GPU.
        ("Standard_NC96ads_A100_v4", "phi-3-mini-4k-instruct", "4",
         {"--data-parallel-size": "4", "--tensor-parallel-size": "1"}),
        # Llama-3.3-70B needs the node's eight A100s: every layer split across them.
        ("Standard_ND96amsr_A100_v4", "llama-3.3-70b-instruct", "8",
         {"--data-parallel-size": None, "--tensor-parallel-size": "8"}),
    ],
    ids=["data-parallel", "tensor-parallel"],
)  # fmt: skip
async def test_multi_gpu_inference_on_one_node(
    kaito: Embedded, instance_type: str, preset: str, gpus: str, flags: dict[str, str | None]
) -> None:
    client = kaito.cluster.client
    secret = {"modelAccessSecret": "hf-token"} if preset.startswith("llama") else {}
    await client.create(workspace(WS, instance_type, preset, **secret), namespace="default")
    ws = await wait_condition(kaito, WS, "WorkspaceReady", within=30.0)
    (node,) = ws["status"]["workerNodes"]
    sts = await client.get("apps/v1", "StatefulSet", WS, "default")
    assert sts["spec"]["replicas"] == 1
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    for name, value in flags.items():
        assert flag(container["command"], name) == value, name
    (pod,) = await pods_of(kaito, WS)
    assert pod["spec"]["nodeName"] == node
    gpu_node = await client.get("v1", "Node", node)
    assert gpu_node["status"]["capacity"]["nvidia.com/gpu"] == gpus
