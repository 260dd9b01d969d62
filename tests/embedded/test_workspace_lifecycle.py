"""The guide's Workspaces from applied to ready (or succeeded), through the in-process cluster with
the fake provisioner: the objects created (their specs), the status, the events, the deletion."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from kaito.cluster import StatusError
from kaito.embedded import Embedded
from tests.embedded.conftest import (
    ScriptedKubelet,
    conditions,
    example,
    get_ws,
    wait_condition,
    wait_for,
)

pytestmark = pytest.mark.anyio


async def workspace_nodes(kaito: Embedded, name: str) -> list[dict[str, Any]]:
    found = await kaito.cluster.client.list(
        "v1", "Node", label_selector=f"kaito.sh/workspace={name}"
    )
    return list(found)


async def events_for(kaito: Embedded, name: str) -> list[dict[str, Any]]:
    found = await kaito.cluster.client.list(
        "v1", "Event", "default", field_selector=f"involvedObject.name={name}"
    )
    return list(found)


async def test_inference_example_becomes_ready_with_its_objects(kaito: Embedded) -> None:
    await kaito.cluster.client.create(
        example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(kaito, "workspace-phi-3-mini", "WorkspaceReady")
    conds = conditions(ws)
    for type_ in ("ResourceReady", "InferenceReady", "WorkspaceSucceeded", "NodesReady"):
        assert conds[type_]["status"] == "True", conds[type_]
        assert conds[type_]["observedGeneration"] == ws["metadata"]["generation"]
    assert ws["status"]["state"] == "Ready"
    assert ws["metadata"]["finalizers"] == ["workspace.finalizer.kaito.sh"]
    assert ws["resource"]["count"] == 1  # defaulted by the mutating webhook / schema

    (node,) = await workspace_nodes(kaito, "workspace-phi-3-mini")
    assert ws["status"]["workerNodes"] == [node["metadata"]["name"]]
    labels = node["metadata"]["labels"]
    assert labels["apps"] == "phi-3"
    assert labels["node.kubernetes.io/instance-type"] == "Standard_NC6s_v3"
    assert labels["kaito.sh/workspacenamespace"] == "default"
    assert node["spec"]["taints"] == [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}]
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"

    client = kaito.cluster.client
    sts = await client.get("apps/v1", "StatefulSet", "workspace-phi-3-mini", "default")
    assert sts["metadata"]["ownerReferences"][0]["kind"] == "Workspace"
    assert sts["status"]["readyReplicas"] == 1
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["python", "-m", "kaito_runtime.inference"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    svc = await client.get("v1", "Service", "workspace-phi-3-mini", "default")
    assert {(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} >= {
        (80, 5000),
        (29500, 29500),
    }
    await client.get("v1", "Service", "workspace-phi-3-mini-headless", "default")
    cm = await client.get("v1", "ConfigMap", "workspace-phi-3-mini-inference-params", "default")
    assert "vllm:" in cm["data"]["inference_config.yaml"]
    pods = await client.list(
        "v1", "Pod", "default", label_selector="kaito.sh/workspace=workspace-phi-3-mini"
    )
    (pod,) = pods
    assert pod["spec"]["nodeName"] == node["metadata"]["name"]

    # The transition's Event is written after the status that shows it: wait for it.
    async def reasons() -> set[str] | None:
        seen = {e["reason"] for e in await events_for(kaito, "workspace-phi-3-mini")}
        return seen if {"WorkloadCreated", "InferenceReadyTrue"} <= seen else None

    await wait_for(reasons, what="the WorkloadCreated and InferenceReadyTrue events")


async def test_adapter_example_pulls_its_adapter_with_strength(kaito: Embedded) -> None:
    doc = example("inference/kaito_workspace_phi_3_with_adapters.yaml")
    await kaito.cluster.client.create(doc, namespace="default")
    await wait_condition(kaito, "workspace-phi-3-mini-adapter", "WorkspaceReady")
    sts = await kaito.cluster.client.get(
        "apps/v1", "StatefulSet", "workspace-phi-3-mini-adapter", "default"
    )
    pod = sts["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][3:] == ["pull", "myregistry.azurecr.io/phi-3-adapter:0.0.1",
                                   "/mnt/adapter/phi-3-adapter"]  # fmt: skip
    assert {"name": "phi-3-adapter", "value": "1.0"} in pod["containers"][0]["env"]


async def test_tuning_example_runs_to_success(kaito: Embedded) -> None:
    await kaito.cluster.client.create(
        example("fine-tuning/kaito_workspace_tuning_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(kaito, "workspace-tuning-phi-3", "WorkspaceSucceeded")
    assert conditions(ws)["WorkspaceReady"]["status"] == "True"
    assert conditions(ws)["JobStarted"]["status"] == "True"
    assert ws["status"]["state"] == "Succeeded"
    job = await kaito.cluster.client.get("batch/v1", "Job", "workspace-tuning-phi-3", "default")
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "data-downloader"
    train, push = pod["containers"][0]["command"][2].split(" && ")
    assert "--method qlora" in train
    assert shlex.split(push)[5] == "myregistry.azurecr.io/phi-3-adapter:0.0.1"
    cm = await kaito.cluster.client.get(
        "v1", "ConfigMap", "workspace-tuning-phi-3-training-params", "default"
    )
    assert "load_in_4bit: true" in cm["data"]["training_config.yaml"]
    assert "local_files_only: false" in cm["data"]["training_config.yaml"]


async def test_deletion_removes_nodes_and_owned_objects(kaito: Embedded) -> None:
    client = kaito.cluster.client
    await client.create(example("inference/kaito_workspace_phi_3.yaml"), namespace="default")
    await wait_condition(kaito, "workspace-phi-3-mini", "WorkspaceReady")
    await client.delete("kaito.sh/v1beta1", "Workspace", "workspace-phi-3-mini", "default")

    async def gone() -> bool:
        try:
            await get_ws(kaito, "workspace-phi-3-mini")
        except StatusError as err:
            return err.code == 404
        return False

    await wait_for(gone, what="the workspace to be deleted")
    assert await workspace_nodes(kaito, "workspace-phi-3-mini") == []
    for api, kind in (
        ("apps/v1", "StatefulSet"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Pod"),
    ):
        left = await client.list(api, kind, "default", label_selector="kaito.sh/workspace")
        assert left == [], kind


async def test_bring_your_own_nodes_are_used_without_provisioning(kaito: Embedded) -> None:
    """With node auto-provisioning, pods are pinned to nodes labelled for their Workspace (as
    upstream v0.12): a node the user labels so counts, and nothing is provisioned."""
    mine = {"apps": "phi-3", "kaito.sh/workspace": "workspace-phi-3-mini",
            "kaito.sh/workspacenamespace": "default"}  # fmt: skip
    await kaito.cluster.add_node("my-gpu-0", gpus=1, labels=mine)
    # Matches the selector but is not labelled for the Workspace: its pods cannot land there.
    await kaito.cluster.add_node("other-gpu", gpus=1, labels={"apps": "phi-3"})
    doc = example("inference/kaito_workspace_phi_3.yaml")
    doc["resource"]["preferredNodes"] = ["my-gpu-0"]
    await kaito.cluster.client.create(doc, namespace="default")
    ws = await wait_condition(kaito, "workspace-phi-3-mini", "WorkspaceReady")
    assert ws["status"]["workerNodes"] == ["my-gpu-0"]
    assert [
        n["metadata"]["name"] for n in await workspace_nodes(kaito, "workspace-phi-3-mini")
    ] == ["my-gpu-0"]  # no node provisioned
    pods = await kaito.cluster.client.list(
        "v1", "Pod", "default", label_selector="kaito.sh/workspace"
    )
    assert [p["spec"]["nodeName"] for p in pods] == ["my-gpu-0"]


async def test_a_node_matching_only_the_selector_is_not_counted(kaito: Embedded) -> None:
    await kaito.cluster.add_node("other-gpu", gpus=1, labels={"apps": "phi-3"})
    await kaito.cluster.client.create(
        example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(kaito, "workspace-phi-3-mini", "WorkspaceReady")
    (node,) = await workspace_nodes(kaito, "workspace-phi-3-mini")
    assert ws["status"]["workerNodes"] == [node["metadata"]["name"]] != ["other-gpu"]
    (pod,) = await kaito.cluster.client.list(
        "v1", "Pod", "default", label_selector="kaito.sh/workspace"
    )
    assert pod["spec"]["nodeName"] == node["metadata"]["name"]


async def test_invalid_workspace_is_refused_by_the_webhook(kaito: Embedded) -> None:
    doc = example("inference/kaito_workspace_phi_3.yaml")
    doc["inference"]["adapters"] = [{"source": {"name": "My_Adapter", "image": "r.io/a:1"}}]
    doc["resource"]["instanceType"] = "Standard_NV6"  # 8Gi: too small for phi-3 (9Gi)
    doc["metadata"]["annotations"] = {"kaito.sh/runtime": "transformers"}
    with pytest.raises(StatusError) as err:
        await kaito.cluster.client.create(doc, namespace="default")
    message = err.value.message
    assert 'admission webhook "validation.workspace.kaito.sh" denied the request' in message
    assert 'inference.adapters[0].source.name: Invalid value: "My_Adapter"' in message
    assert "resource.instanceType" in message and "insufficient total GPU memory" in message


async def test_the_schema_refuses_a_bad_strength_before_admission(kaito: Embedded) -> None:
    doc = example("inference/kaito_workspace_phi_3.yaml")
    doc["inference"]["adapters"] = [
        {"source": {"name": "a", "image": "r.io/a:1"}, "strength": "1.5"}
    ]
    with pytest.raises(StatusError) as err:
        await kaito.cluster.client.create(doc, namespace="default")
    assert err.value.code == 422
    assert 'inference.adapters[0].strength: Invalid value: "1.5"' in err.value.message


async def test_quota_error_becomes_a_condition_and_a_warning_event(kaito: Embedded) -> None:
    kaito.provisioner.fail("quota", instance_type="Standard_NC6s_v3")
    await kaito.cluster.client.create(
        example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(
        kaito, "workspace-phi-3-mini", "ResourceReady", "False", reason="QuotaExceeded"
    )
    assert "quota increase" in conditions(ws)["ResourceReady"]["message"]
    assert conditions(ws)["WorkspaceReady"]["status"] == "False"

    async def warned() -> list[dict[str, Any]]:
        return [
            e for e in await events_for(kaito, "workspace-phi-3-mini") if e["type"] == "Warning"
        ]

    (event, *_) = await wait_for(warned, what="a Warning event")
    assert "QuotaExceeded" in event["message"]
    kaito.provisioner.heal()  # the controller retries on its own and recovers
    await wait_condition(kaito, "workspace-phi-3-mini", "WorkspaceReady")


async def test_node_that_never_becomes_ready(kaito: Embedded) -> None:
    kaito.provisioner.fail("never_ready")
    kaito.provisioner.timeout = 1.0
    await kaito.cluster.client.create(
        example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(
        kaito, "workspace-phi-3-mini", "ResourceReady", "False", reason="NodeNotReady"
    )
    assert "never became Ready" in conditions(ws)["ResourceReady"]["message"]
    assert conditions(ws)["NodesReady"]["status"] == "False"


async def test_adapter_image_that_cannot_be_pulled(
    kaito: Embedded, kubelet: ScriptedKubelet
) -> None:
    kubelet.waiting["workspace-phi-3-mini-adapter"] = (
        "ImagePullBackOff",
        'Back-off pulling image "myregistry.azurecr.io/phi-3-adapter:0.0.1"',
    )
    doc = example("inference/kaito_workspace_phi_3_with_adapters.yaml")
    await kaito.cluster.client.create(doc, namespace="default")
    ws = await wait_condition(kaito, "workspace-phi-3-mini-adapter", "InferenceReady", "False",
                              reason="ImagePullError")  # fmt: skip
    assert "phi-3-adapter:0.0.1" in conditions(ws)["InferenceReady"]["message"]
    assert conditions(ws)["WorkspaceReady"]["status"] == "False"


async def test_crash_looping_pod_is_not_reported_ready(
    kaito: Embedded, kubelet: ScriptedKubelet
) -> None:
    kubelet.waiting["workspace-phi-3-mini"] = (
        "CrashLoopBackOff",
        "back-off restarting failed container",
    )
    await kaito.cluster.client.create(
        example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(kaito, "workspace-phi-3-mini", "InferenceReady", "False",
                              reason="ContainerCrashLoopBackOff")  # fmt: skip
    assert conditions(ws)["WorkspaceSucceeded"]["status"] == "False"
    assert ws["status"]["state"] == "Pending"


async def test_failed_tuning_job_reports_why(kaito: Embedded, kubelet: ScriptedKubelet) -> None:
    kubelet.failing["workspace-tuning-phi-3"] = (
        3,
        "Error",
        "dataset is missing column 'messages' (columns found: text, label)",
    )
    await kaito.cluster.client.create(
        example("fine-tuning/kaito_workspace_tuning_phi_3.yaml"), namespace="default"
    )
    ws = await wait_condition(kaito, "workspace-tuning-phi-3", "WorkspaceSucceeded", "False",
                              reason="workspaceFailed", within=30)  # fmt: skip
    message = conditions(ws)["WorkspaceSucceeded"]["message"]
    assert "columns found: text, label" in message
    assert ws["status"]["state"] == "Failed"
    assert conditions(ws)["JobStarted"]["reason"] == "WorkspaceTuningJobStatusFailed"


async def test_spec_change_rolls_the_workload_without_new_nodes(kaito: Embedded) -> None:
    client = kaito.cluster.client
    await client.create(example("inference/kaito_workspace_phi_3.yaml"), namespace="default")
    await wait_condition(kaito, "workspace-phi-3-mini", "WorkspaceReady")
    (node,) = await workspace_nodes(kaito, "workspace-phi-3-mini")
    before = await client.get("apps/v1", "StatefulSet", "workspace-phi-3-mini", "default")
    adapters = [
        {"source": {"name": "extra", "image": "myregistry.azurecr.io/extra:1"}, "strength": "0.5"}
    ]
    await client.patch("kaito.sh/v1beta1", "Workspace", "workspace-phi-3-mini",
                       {"inference": {"adapters": adapters}}, namespace="default")  # fmt: skip

    async def rolled() -> dict[str, Any] | None:
        sts = await client.get("apps/v1", "StatefulSet", "workspace-phi-3-mini", "default")
        old = before["metadata"]["annotations"]["workspace.kaito.io/revision"]
        return sts if sts["metadata"]["annotations"]["workspace.kaito.io/revision"] != old else None

    sts = await wait_for(rolled, what="the StatefulSet to roll")
    assert sts["spec"]["template"]["spec"]["initContainers"][0]["name"] == "puller-extra"
    assert [
        n["metadata"]["name"] for n in await workspace_nodes(kaito, "workspace-phi-3-mini")
    ] == [node["metadata"]["name"]]
