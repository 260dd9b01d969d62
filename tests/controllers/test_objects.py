"""The objects a Workspace owns, rendered from the guide's examples: assert their specs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from kaito.api import check_workspace, default_template
from kaito.api.v1beta1 import Workspace
from kaito.catalog import preset_catalog, sku_catalog
from kaito.controllers import (
    ControllerSettings,
    InferencePlan,
    TuningPlan,
    inference_config_map,
    inference_services,
    inference_statefulset,
    merge_inference_config,
    revision_hash,
    training_config_map,
    tuning_job,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = ControllerSettings(runtime_image="kaito-runtime:test")


def load(rel: str, uid: str = "uid-1") -> Workspace:
    doc = yaml.safe_load((EXAMPLES / rel).read_text())
    doc["metadata"].update(namespace="default", uid=uid, generation=1)
    result = check_workspace(doc)
    assert result.workspace is not None
    return result.workspace


def inference_plan(ws: Workspace, config: str | None = None) -> InferencePlan:
    assert ws.inference and ws.inference.preset and ws.resource
    preset = preset_catalog().get(ws.inference.preset.name)
    assert preset
    default = default_template("inference-params-template")
    assert default
    return InferencePlan(
        preset=preset,
        model_id=preset.model_id,
        sku=sku_catalog().get(ws.resource.instance_type or ""),
        node_count=1,
        runtime="vllm",
        config_text=merge_inference_config(default["inference_config.yaml"], config),
        revision=revision_hash(ws),
    )


def container(sts: dict[str, Any]) -> dict[str, Any]:
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def test_inference_statefulset_for_the_guide() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    sts = inference_statefulset(ws, inference_plan(ws), SETTINGS)
    assert sts["metadata"]["name"] == "workspace-phi-3-mini"
    assert sts["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kaito.sh/v1beta1",
            "kind": "Workspace",
            "name": "workspace-phi-3-mini",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "workspace-phi-3-mini-headless"
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["selector"]["matchLabels"] == {
        "kaito.sh/workspace": "workspace-phi-3-mini",
        "kaito.sh/workspacenamespace": "default",
    }
    pod = spec["template"]["spec"]
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "apps", "operator": "In", "values": ["phi-3"]}]}
    ]
    c = container(sts)
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert c["command"][:5] == ["python", "-m", "kaito_runtime.inference", "--model",
                                "microsoft/Phi-3-mini-4k-instruct"]  # fmt: skip
    args = c["command"]
    assert args[args.index("--served-model-name") + 1] == "phi-3-mini-4k-instruct"
    assert args[args.index("--port") + 1] == "5000"
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.84"
    assert "--trust-remote-code" not in args
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": 5000}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/dev/shm", "/mnt/config", "/workspace/weights"} <= mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory"}}
    assert volumes["config-volume"]["configMap"]["name"] == "workspace-phi-3-mini-inference-params"
    assert "initContainers" not in pod


def test_v100_gets_float16_instead_of_bfloat16() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(ws)
    mistral = preset_catalog().get("mistral-7b-instruct")
    assert mistral
    from attrs import evolve

    args = container(inference_statefulset(ws, evolve(plan, preset=mistral), SETTINGS))["command"]
    assert args[args.index("--dtype") + 1] == "float16"


def test_adapters_are_pulled_by_init_containers_with_their_strength() -> None:
    ws = load("inference/kaito_workspace_phi_3_with_adapters.yaml")
    sts = inference_statefulset(ws, inference_plan(ws), SETTINGS)
    pod = sts["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == "puller-phi-3-adapter"
    assert init["command"] == [
        "python", "-m", "kaito_runtime.adapters", "pull",
        "myregistry.azurecr.io/phi-3-adapter:0.0.1", "/mnt/adapter/phi-3-adapter",
    ]  # fmt: skip
    c = container(sts)
    assert {"name": "phi-3-adapter", "value": "1.0"} in c["env"]
    assert {"name": "adapter-volume", "mountPath": "/mnt/adapter"} in c["volumeMounts"]


def test_services_expose_80_and_29500() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    main, headless = inference_services(ws, SETTINGS)
    assert main["spec"]["type"] == "ClusterIP"
    ports = {p["port"]: p["targetPort"] for p in main["spec"]["ports"]}
    assert ports[80] == 5000
    assert ports[29500] == 29500
    assert (
        main["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == "workspace-phi-3-mini-0"
    )
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["metadata"]["name"] == "workspace-phi-3-mini-headless"


def test_user_config_is_merged_over_the_defaults() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(ws, "vllm:\n  max-model-len: 4096\n")
    cm = inference_config_map(ws, plan)
    config = yaml.safe_load(cm["data"]["inference_config.yaml"])
    assert config["vllm"] == {"cpu-offload-gb": 0, "max-model-len": 4096}
    assert config["max_probe_steps"] == 6


def test_revision_changes_with_the_spec_only() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    from attrs import evolve

    from kaito.api.v1beta1 import WorkspaceStatus

    with_status = evolve(ws, status=WorkspaceStatus(state="Ready"))
    assert revision_hash(ws) == revision_hash(with_status)
    labelled = evolve(ws, metadata=evolve(ws.metadata, labels={"team": "a"}))
    assert revision_hash(ws) == revision_hash(labelled)
    other = load("inference/kaito_workspace_phi_3_with_adapters.yaml")
    assert revision_hash(ws) != revision_hash(other)


def test_tuning_job_for_the_guide() -> None:
    ws = load("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    preset = preset_catalog().get("phi-3-mini-128k-instruct")
    assert preset
    template = default_template("qlora-params-template")
    assert template
    plan = TuningPlan(
        preset=preset,
        sku=sku_catalog().get("Standard_NC6s_v3"),
        config_text=template["training_config.yaml"],
        revision=revision_hash(ws),
    )
    job = tuning_job(ws, plan, SETTINGS)
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "workspace-tuning-phi-3"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (init,) = pod["initContainers"]
    assert init["name"] == "data-downloader"
    assert init["command"][:6] == [
        "python",
        "-m",
        "kaito_runtime.data",
        "fetch",
        "--dest",
        "/mnt/data",
    ]
    assert init["command"][6:] == [
        "--url",
        "https://huggingface.co/datasets/philschmid/dolly-15k-oai-style/resolve/main/data/"
        "train-00000-of-00001-54e3756291ca09c6.parquet?download=true",
    ]
    (c,) = pod["containers"]
    assert c["command"][:2] == ["sh", "-c"]
    train, push = c["command"][2].split(" && ")
    assert shlex.split(train)[:3] == ["python", "-m", "kaito_runtime.tuning"]
    assert "--method" in shlex.split(train) and "qlora" in shlex.split(train)
    assert shlex.split(push) == [
        "python", "-m", "kaito_runtime.adapters", "push", "/mnt/results",
        "myregistry.azurecr.io/phi-3-adapter:0.0.1", "--model-name", "phi-3-mini-128k-instruct",
        "--docker-config", "/root/.docker",
    ]  # fmt: skip
    assert {"name": "DEFAULT_TARGET_MODULES",
            "value": "k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj"} in c["env"]  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-config"]["secret"] == {
        "secretName": "acr-registry-secret",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    cm = training_config_map(ws, plan)
    assert "load_in_4bit: true" in cm["data"]["training_config.yaml"]
