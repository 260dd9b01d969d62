"""The objects a Workspace owns, rendered from the guide's examples and multi-GPU, multi-node and
template Workspaces: the behaviours behind the fields (upstream's values field by field are
``test_upstream_parity.py``'s)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import attrs
import pytest
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
    template_statefulset,
    training_config_map,
    tuning_job,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = ControllerSettings(runtime_image="kaito-runtime:test")


def load(rel: str, uid: str = "uid-1", **patch: Any) -> Workspace:
    doc = yaml.safe_load((EXAMPLES / rel).read_text())
    doc["metadata"].update(namespace="default", uid=uid, generation=1)
    for section, value in patch.items():
        doc[section] = {**doc.get(section, {}), **value}
    result = check_workspace(doc)
    assert result.workspace is not None, result.errors
    return result.workspace


def inference_plan(
    ws: Workspace,
    config: str | None = None,
    *,
    runtime: str = "vllm",
    preset: str | None = None,
    instance_type: str | None = None,
    nodes: int = 1,
) -> InferencePlan:
    assert ws.inference and ws.inference.preset and ws.resource
    found = preset_catalog().get(preset or ws.inference.preset.name)
    assert found
    default = default_template("inference-params-template")
    assert default
    return InferencePlan(
        preset=found,
        model_id=found.model_id,
        sku=sku_catalog().get(instance_type or ws.resource.instance_type or ""),
        node_count=nodes,
        runtime=runtime,
        config_text=merge_inference_config(default["inference_config.yaml"], config),
        revision="1",
    )


def container(sts: dict[str, Any]) -> dict[str, Any]:
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_inference_statefulset_for_the_guide() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    sts = inference_statefulset(ws, inference_plan(ws), SETTINGS)
    assert sts["metadata"]["name"] == "workspace-phi-3-mini"
    assert sts["metadata"]["annotations"] == {"workspace.kaito.io/revision": "1"}
    spec = sts["spec"]
    assert (spec["replicas"], spec["podManagementPolicy"]) == (1, "Parallel")
    assert spec["serviceName"] == "workspace-phi-3-mini-headless"
    assert spec["selector"]["matchLabels"] == {"kaito.sh/workspace": "workspace-phi-3-mini"}
    assert spec["template"]["metadata"]["labels"] == spec["selector"]["matchLabels"]
    pod = spec["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    # The selector's label, then the provisioned nodes' Workspace labels (node auto-provisioning).
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "apps", "operator": "In", "values": ["phi-3"]},
        {"key": "kaito.sh/workspace", "operator": "In", "values": ["workspace-phi-3-mini"]},
        {"key": "kaito.sh/workspacenamespace", "operator": "In", "values": ["default"]},
    ]}]  # fmt: skip
    c = container(sts)
    assert c["name"] == "workspace-phi-3-mini"
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    args = c["command"]
    assert args[:5] == ["python", "-m", "kaito_runtime.inference", "--model",
                        "microsoft/Phi-3-mini-4k-instruct"]  # fmt: skip
    assert flag(args, "--served-model-name") == "phi-3-mini-4k-instruct"
    assert flag(args, "--max-model-len") == "auto"
    assert flag(args, "--tensor-parallel-size") == "1"
    assert flag(args, "--data-parallel-size") is None
    assert flag(args, "--dtype") == "float16"  # a V100: no bfloat16
    assert "--trust-remote-code" in args
    # 30 minutes of startup for a 7 GiB model (15 min + 18 s/GiB, at least 30 min).
    assert c["startupProbe"] == {"httpGet": {"path": "/health", "port": 5000},
                                 "periodSeconds": 10, "failureThreshold": 180}  # fmt: skip
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VLLM_USE_FLASHINFER_SAMPLER"] == env["VLLM_USE_DEEP_GEMM"] == "0"
    assert "initContainers" not in pod and "imagePullSecrets" not in pod


def test_bring_your_own_nodes_are_not_pinned_to_workspace_labels() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    byo = ControllerSettings(runtime_image="kaito-runtime:test", node_auto_provisioning=False)
    pod = inference_statefulset(ws, inference_plan(ws), byo)["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "apps", "operator": "In", "values": ["phi-3"]}]}
    ]


def test_startup_budget_grows_with_the_model() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(
        ws, preset="llama-3.3-70b-instruct", instance_type="Standard_NC24ads_A100_v4", nodes=3
    )
    probe = container(inference_statefulset(ws, plan, SETTINGS))["startupProbe"]
    # 131.42 GiB: 15 min + 2366 s = 3266 s, so 327 periods of 10 s.
    assert probe["failureThreshold"] == 327


@pytest.mark.parametrize(
    ("instance_type", "preset", "expected"),
    [
        ("Standard_NC6s_v3", "phi-3-mini-4k-instruct", {"--tensor-parallel-size": "1"}),
        # Four A100s, a 7 GiB model: one replica per GPU.
        ("Standard_NC96ads_A100_v4", "phi-3-mini-4k-instruct",
         {"--data-parallel-size": "4", "--tensor-parallel-size": "1"}),
        # Eight GPUs, a 131 GiB model: every layer split over the node's GPUs.
        ("Standard_ND96amsr_A100_v4", "llama-3.3-70b-instruct", {"--tensor-parallel-size": "8"}),
        # Two A10s, a 27 GiB model: more than half a GPU, so tensor parallel.
        ("Standard_NV72ads_A10_v5", "phi-4", {"--tensor-parallel-size": "2"}),
    ],
)  # fmt: skip
def test_parallelism_follows_the_sku_and_the_models_size(
    instance_type: str, preset: str, expected: dict[str, str]
) -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(ws, preset=preset, instance_type=instance_type)
    c = container(inference_statefulset(ws, plan, SETTINGS))
    args = c["command"]
    for name in ("--data-parallel-size", "--tensor-parallel-size", "--pipeline-parallel-size"):
        assert flag(args, name) == expected.get(name), name
    sku = sku_catalog().get(instance_type)
    assert sku
    assert c["resources"]["limits"] == {"nvidia.com/gpu": str(sku.gpu_count)}


def test_several_nodes_run_the_ray_launcher_with_exec_probes() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(
        ws, preset="llama-3.3-70b-instruct", instance_type="Standard_NC24ads_A100_v4", nodes=3
    )
    sts = inference_statefulset(ws, plan, SETTINGS)
    assert sts["spec"]["replicas"] == 3
    c = container(sts)
    leader = "workspace-phi-3-mini-0.workspace-phi-3-mini-headless.default.svc.cluster.local"
    at = c["command"].index("--")
    assert c["command"][:at] == ["python", "-m", "kaito_runtime.launch", "ray", "--nodes", "3",
                                 "--leader-address", leader, "--ray-port", "6379"]  # fmt: skip
    server = c["command"][at + 1 :]
    assert server[2] == "kaito_runtime.inference"
    assert flag(server, "--tensor-parallel-size") == "1"
    assert flag(server, "--pipeline-parallel-size") == "3"
    assert flag(server, "--distributed-executor-backend") == "ray"
    assert {"name": "POD_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}} in c["env"]  # fmt: skip
    assert c["livenessProbe"]["exec"]["command"] == [
        "python", "-m", "kaito_runtime.launch", "health", "liveness", "--leader-address", leader,
        "--ray-port", "6379", "--nodes", "3"]  # fmt: skip
    assert c["livenessProbe"]["initialDelaySeconds"] == 60
    assert c["readinessProbe"]["exec"]["command"][3:5] == ["health", "readiness"]
    assert c["startupProbe"]["failureThreshold"] == 327


def test_transformers_runs_one_process_without_vllm_flags() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    c = container(inference_statefulset(ws, inference_plan(ws, runtime="transformers"), SETTINGS))
    args = c["command"]
    assert flag(args, "--backend") == "transformers"
    assert flag(args, "--dtype") == "auto"  # Phi: torch_dtype auto
    assert "--trust-remote-code" in args  # Phi's run parameters
    assert not {"--max-model-len", "--tensor-parallel-size", "--gpu-memory-utilization"} & set(args)
    assert "VLLM_USE_FLASHINFER_SAMPLER" not in {e["name"] for e in c["env"]}


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


def test_every_adapter_pull_secret_reaches_the_pod() -> None:
    ws = load(
        "inference/kaito_workspace_phi_3_with_adapters.yaml",
        inference={"adapters": [
            {"source": {"name": "a", "image": "r.io/a:1", "imagePullSecrets": ["s1", "s2"]}},
            {"source": {"name": "b", "image": "r.io/b:1", "imagePullSecrets": ["s3"]},
             "strength": "0.5"},
            {"source": {"name": "c", "volumeSource": {"emptyDir": {}}}, "strength": "0.2"},
        ], "preset": {"name": "phi-3-mini-128k-instruct"}},
    )  # fmt: skip
    pod = inference_statefulset(ws, inference_plan(ws), SETTINGS)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "s1"}, {"name": "s2"}, {"name": "s3"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-config-a-inference-adapter"]["projected"]["sources"] == [
        {"secret": {"name": "s1", "items": [{"key": ".dockerconfigjson", "path": "s1.json"}]}},
        {"secret": {"name": "s2", "items": [{"key": ".dockerconfigjson", "path": "s2.json"}]}},
    ]
    assert volumes["adapter-volume-c"] == {"name": "adapter-volume-c", "emptyDir": {}}
    puller_a = pod["initContainers"][0]
    assert puller_a["command"][-2:] == [
        "--docker-config",
        "/root/.docker/config.d/a-inference-adapter",
    ]
    env = [e for e in pod["containers"][0]["env"] if e["name"] in ("a", "b", "c")]
    assert env == [{"name": "b", "value": "0.5"}, {"name": "c", "value": "0.2"}]  # a: no strength


def test_the_gated_models_token_comes_from_its_secret() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml", inference={"preset": {
        "name": "llama-3.1-8b-instruct", "presetOptions": {"modelAccessSecret": "hf-token"}}})  # fmt: skip
    c = container(
        inference_statefulset(
            ws, inference_plan(ws, instance_type="Standard_NC24ads_A100_v4"), SETTINGS
        )
    )
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "hf-token", "key": "HF_TOKEN", "optional": True}}} in c["env"]  # fmt: skip


def test_services_select_pod_0_and_publish_not_ready_addresses() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    main, headless = inference_services(ws, SETTINGS)
    assert main["spec"]["type"] == "ClusterIP"
    ports = {p["port"]: p["targetPort"] for p in main["spec"]["ports"]}
    assert ports == {80: 5000, 29500: 29500, 6379: 6379, 8265: 8265}
    assert main["spec"]["selector"] == {
        "kaito.sh/workspace": "workspace-phi-3-mini",
        "statefulset.kubernetes.io/pod-name": "workspace-phi-3-mini-0",
    }
    assert main["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"] == {
        "selector": {"kaito.sh/workspace": "workspace-phi-3-mini"},
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
    }


def test_user_config_is_merged_over_the_defaults() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(ws, "vllm:\n  max-model-len: 4096\n")
    cm = inference_config_map(ws, plan)
    config = yaml.safe_load(cm["data"]["inference_config.yaml"])
    assert config["vllm"] == {"cpu-offload-gb": 0, "max-model-len": 4096}
    assert config["max_probe_steps"] == 6
    # A change of the parameters restarts the pods (the template's parameters hash changes).
    before = inference_statefulset(ws, inference_plan(ws), SETTINGS)["spec"]["template"]
    after = inference_statefulset(ws, plan, SETTINGS)["spec"]["template"]
    assert before["metadata"]["annotations"] != after["metadata"]["annotations"]


def test_revision_changes_with_the_spec_only() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    from kaito.api.v1beta1 import WorkspaceStatus

    with_status = attrs.evolve(ws, status=WorkspaceStatus(state="Ready"))
    assert revision_hash(ws) == revision_hash(with_status)
    labelled = attrs.evolve(ws, metadata=attrs.evolve(ws.metadata, labels={"team": "a"}))
    assert revision_hash(ws) == revision_hash(labelled)
    other = load("inference/kaito_workspace_phi_3_with_adapters.yaml")
    assert revision_hash(ws) != revision_hash(other)


TEMPLATE = {
    "metadata": {"labels": {"app": "mine"}, "annotations": {"team": "x"}},
    "spec": {
        "containers": [{"name": "server", "image": "busybox", "command": ["sh", "-c", "sleep 1"],
                        "readinessProbe": {"tcpSocket": {"port": 8080}}}],
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"podAntiAffinity": {}},
    },
}  # fmt: skip


def test_a_template_runs_the_users_pod_with_kaitos_placement() -> None:
    doc = yaml.safe_load((EXAMPLES / "inference/kaito_workspace_phi_3.yaml").read_text())
    doc["metadata"].update(namespace="default", uid="uid-1", generation=1)
    doc["inference"] = {"template": TEMPLATE}
    result = check_workspace(doc)
    assert result.ok and result.workspace is not None, result.errors
    sts = template_statefulset(result.workspace, replicas=2, revision="3", settings=SETTINGS)
    assert sts["metadata"]["annotations"] == {"workspace.kaito.io/revision": "3"}
    spec = sts["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"kaito.sh/workspace": "workspace-phi-3-mini"}}
    assert "serviceName" not in spec and "podManagementPolicy" not in spec  # as upstream
    meta, pod = spec["template"]["metadata"], spec["template"]["spec"]
    assert meta == {"labels": {"app": "mine", "kaito.sh/workspace": "workspace-phi-3-mini"},
                    "annotations": {"team": "x"}}  # fmt: skip
    assert pod["containers"] == TEMPLATE["spec"]["containers"]  # the user's own probes
    assert pod["tolerations"][0] == {"key": "dedicated", "operator": "Exists"}
    assert pod["tolerations"][1]["key"] == "nvidia.com/gpu"
    assert list(pod["affinity"]) == ["nodeAffinity"]  # replaced, as upstream
    assert TEMPLATE["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]


def tuning_plan(
    ws: Workspace, config: str | None = None, instance_type: str = "Standard_NC6s_v3"
) -> TuningPlan:
    preset = preset_catalog().get("phi-3-mini-128k-instruct")
    template = default_template("qlora-params-template")
    assert preset and template
    return TuningPlan(
        preset=preset,
        sku=sku_catalog().get(instance_type),
        config_text=config or template["training_config.yaml"],
        revision="1",
    )


def test_tuning_job_for_the_guide() -> None:
    ws = load("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    plan = tuning_plan(ws)
    job = tuning_job(ws, plan, SETTINGS)
    assert job["metadata"]["name"] == "workspace-tuning-phi-3"
    assert "backoffLimit" not in job["spec"]  # Kubernetes' default (6), as upstream
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["tolerations"][:2] == [
        {"key": "gpu", "operator": "Equal", "effect": "NoSchedule"},
        {"key": "sku", "value": "gpu", "effect": "NoSchedule"},
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["tuning-phi-3"]}]}
    ]
    assert pod["imagePullSecrets"] == [{"name": "acr-registry-secret"}]
    (init,) = pod["initContainers"]
    assert init["name"] == "data-downloader"
    assert init["command"][:6] == ["python", "-m", "kaito_runtime.data", "fetch", "--dest",
                                   "/mnt/data"]  # fmt: skip
    (c,) = pod["containers"]
    assert c["name"] == "workspace-tuning-phi-3"
    assert c["command"][:2] == ["sh", "-c"]
    train, push = c["command"][2].split(" && ")
    assert shlex.split(train)[:6] == ["python", "-m", "kaito_runtime.launch", "tuning",
                                      "--processes-per-node", "1"]  # fmt: skip
    assert "--method qlora" in train and "--output-dir /mnt/results" in train
    assert shlex.split(push) == [
        "python", "-m", "kaito_runtime.adapters", "push", "/mnt/results",
        "myregistry.azurecr.io/phi-3-adapter:0.0.1", "--model-name", "phi-3-mini-128k-instruct",
        "--docker-config", "/root/.docker",
    ]  # fmt: skip
    assert {"name": "DEFAULT_TARGET_MODULES",
            "value": "k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj"} in c["env"]  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-config"]["projected"]["sources"] == [{"secret": {
        "name": "acr-registry-secret",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}]  # fmt: skip
    cm = training_config_map(ws, plan)
    assert "load_in_4bit: true" in cm["data"]["training_config.yaml"]


def test_the_results_volume_goes_where_the_parameters_say() -> None:
    ws = load("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    config = "training_config:\n  TrainingArguments:\n    output_dir: adapter\n"
    pod = tuning_job(ws, tuning_plan(ws, config), SETTINGS)["spec"]["template"]["spec"]
    assert {"name": "results-volume", "mountPath": "/mnt/adapter"} in pod["containers"][0][
        "volumeMounts"
    ]
    assert "--output-dir /mnt/adapter" in pod["containers"][0]["command"][2]
    unset = tuning_job(ws, tuning_plan(ws, "training_config: {}\n"), SETTINGS)
    mounts = unset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "results-volume", "mountPath": "/mnt/output"} in mounts


def test_a_private_input_image_is_pulled_with_all_its_secrets() -> None:
    ws = load("fine-tuning/kaito_workspace_tuning_phi_3.yaml", tuning={
        "input": {"name": "data", "image": "r.io/data:1", "imagePullSecrets": ["p1", "p2"]}})  # fmt: skip
    pod = tuning_job(ws, tuning_plan(ws), SETTINGS)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == "puller"
    assert init["command"][-2:] == ["--docker-config", "/root/.docker/config.d/data-tuning-input"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert [
        s["secret"]["name"]
        for s in volumes["docker-config-data-tuning-input"]["projected"]["sources"]
    ] == ["p1", "p2"]
    # Upstream mounts the input's volumes in every container of the pod.
    assert {"name": "docker-config-data-tuning-input",
            "mountPath": "/root/.docker/config.d/data-tuning-input"} in pod["containers"][0]["volumeMounts"]  # fmt: skip
