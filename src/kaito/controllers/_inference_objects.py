"""The objects an inference Workspace owns: parameters ConfigMap, Services and the StatefulSet.

Controller layer (pure functions returning JSON dicts). Field by field upstream KAITO v0.12's
(``pkg/workspace/inference``, ``pkg/workspace/manifests``, ``pkg/model``): a StatefulSet named
after the Workspace (one pod per node, pod 0 serving), the main Service on port 80 selecting pod
0 and the headless one, GPUs from the SKU, GPU tolerations, node affinity on the selector's
labels and the provisioned nodes' Workspace labels, ``/dev/shm`` in memory, adapters under
``/mnt/adapter/<name>``. What differs on purpose (our runtime's command line, the per-Workspace
parameters ConfigMap, labels on every object) is listed in ``docs/upstream-parity.md``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final

import attrs
import yaml

from kaito.api import AdapterSpec, load_config_file
from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.catalog import SKU, Preset, gpu_memory_utilization
from kaito.controllers._naming import (
    controller_owner_reference,
    headless_service_name,
    inference_config_name,
    workspace_labels,
)
from kaito.controllers._owned import INFERENCE_SERVICE, INFERENCE_SET
from kaito.controllers._parallelism import Parallelism, vllm_parallelism
from kaito.controllers._pod_parts import (
    MODEL_WEIGHTS_VOLUME,
    config_volume,
    docker_config_volume,
    gpu_resources,
    inference_tolerations,
    node_affinity,
    provisioner_node_selector,
    selector_requirements,
    shm_volume,
    weights_mount,
    workspace_selector,
)
from kaito.controllers._settings import ControllerSettings
from kaito_runtime.contract import (
    ADAPTER_DIR,
    ADAPTERS_MODULE,
    HEALTH_PATH,
    HF_HOME_ENV,
    INFERENCE_CONFIG_PATH,
    INFERENCE_MODULE,
    LAUNCH_MODULE,
    POD_INDEX_ENV,
    POD_INDEX_LABEL,
    POD_IP_REFERENCE,
    RAY_PORT,
    TERMINATION_MESSAGE_POLICY,
    WEIGHTS_DIR,
    AdapterFlags,
    InferenceFlags,
    LaunchFlags,
    module_command,
    pod_ip_env,
)

__all__ = (
    "MAX_MODEL_LEN_AUTO",
    "PARAMETERS_HASH_ANNOTATION",
    "POD_NAME_LABEL",
    "InferencePlan",
    "image_pull_secrets",
    "inference_config_map",
    "inference_services",
    "inference_statefulset",
    "is_multi_node",
    "merge_inference_config",
    "parallelism",
    "parameters_hash",
    "pod_affinity_requirements",
    "ray_leader_address",
    "served_model_name",
    "server_args",
    "server_command",
    "startup_failure_threshold",
)

POD_NAME_LABEL: Final = "statefulset.kubernetes.io/pod-name"
#: On the pod template: a hash of the parameters file, so a change of it restarts the pods.
PARAMETERS_HASH_ANNOTATION: Final = "kaito.sh/parameters-hash"
_NO_BF16_GPUS: Final = ("V100", "T4", "M60", "K80", "P100", "P40")
#: Upstream's startup budget: 15 minutes plus 18 s per GiB of weights, within [30, 180] min.
_STARTUP_BASE_S: Final = 15 * 60
_STARTUP_PER_GIB_S: Final = 18
_STARTUP_FLOOR_S: Final = 30 * 60
_STARTUP_CAP_S: Final = 180 * 60
_PROBE_PERIOD_S: Final = 10
#: vLLM's context length when it is not configured: the largest that fits the KV cache.
MAX_MODEL_LEN_AUTO: Final = "auto"


@attrs.frozen
class InferencePlan:
    """What the inference workload is rendered from (besides the Workspace itself)."""

    preset: Preset | None
    model_id: str
    #: The GPUs of one node: the instance type's, or the bring-your-own nodes' labels.
    sku: SKU | None
    node_count: int
    runtime: str
    #: The merged inference_config.yaml text mounted at /mnt/config.
    config_text: str
    #: The Workspace's revision number (``workspace.kaito.io/revision``).
    revision: str


def merge_inference_config(default_text: str, user_text: str | None) -> str:
    """The parameters file: the defaults with the user's ConfigMap merged over them (deeply)."""
    base = yaml.safe_load(default_text) or {}
    if user_text:
        _deep_merge(base, load_config_file(user_text) or {})  # the user's: bounded
    return yaml.safe_dump(base, sort_keys=False)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def parameters_hash(config_text: str) -> str:
    """A short hash of a parameters file (the pod template's :data:`PARAMETERS_HASH_ANNOTATION`)."""
    return hashlib.sha256(config_text.encode()).hexdigest()[:16]


def inference_config_map(ws: Workspace, plan: InferencePlan) -> dict[str, Any]:
    """The ConfigMap with ``inference_config.yaml`` the server reads."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inference_config_name(ws),
            "namespace": ws.metadata.namespace,
            "labels": workspace_labels(ws),
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "data": {c.INFERENCE_CONFIG_KEY: plan.config_text},
    }


def inference_services(ws: Workspace, settings: ControllerSettings) -> list[dict[str, Any]]:
    """The main Service (pod 0 on port 80, Ray's ports, 29500 as the guide shows) and the
    headless one the StatefulSet's pods are named through; both publish not-ready addresses."""
    name = ws.metadata.name or ""
    enable_lb = (ws.metadata.annotations or {}).get(c.ANNOTATION_ENABLE_LB) == "True"
    meta = {
        "namespace": ws.metadata.namespace,
        "labels": workspace_labels(ws),
        "ownerReferences": [controller_owner_reference(ws)],
    }
    selector = workspace_selector(ws)
    main = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": INFERENCE_SERVICE.name(name), **meta},
        "spec": {
            "type": "LoadBalancer" if enable_lb else "ClusterIP",
            "selector": {**selector, POD_NAME_LABEL: f"{INFERENCE_SET.name(name)}-0"},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": settings.server_port},
                {"name": "torchrun", "protocol": "TCP", "port": 29500, "targetPort": 29500},
                {"name": "ray", "protocol": "TCP", "port": RAY_PORT, "targetPort": RAY_PORT},
                {"name": "dashboard", "protocol": "TCP", "port": 8265, "targetPort": 8265},
            ],
            "publishNotReadyAddresses": True,
        },
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": headless_service_name(ws), **meta},
        "spec": {
            "selector": selector,
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
        },
    }
    return [main, headless]


def served_model_name(model_id: str) -> str:
    """The name clients ask for: the model id's last segment, lower-cased (upstream's
    generator: ``microsoft/Phi-3-mini-4k-instruct`` is served as ``phi-3-mini-4k-instruct``)."""
    return model_id.rstrip("/").rsplit("/", 1)[-1].lower()


def ray_leader_address(ws: Workspace) -> str:
    """Pod 0's name through the headless Service (upstream's ``GetRayLeaderHost``)."""
    name, namespace = ws.metadata.name or "", ws.metadata.namespace or "default"
    return f"{name}-0.{headless_service_name(ws)}.{namespace}.svc.cluster.local"


def _dtype(plan: InferencePlan) -> str:
    """vLLM: ``auto`` for quantized models, else ``bfloat16``; transformers: the preset's
    ``torch_dtype``. A GPU generation without bfloat16 gets float16 (the guide's V100)."""
    preset = plan.preset
    if plan.runtime == c.RuntimeName.VLLM:
        dtype = "auto" if preset is not None and preset.quant_method else "bfloat16"
    else:
        dtype = preset.dtype if preset is not None else "auto"
    if dtype == "bfloat16" and plan.sku and any(g in plan.sku.gpu_model for g in _NO_BF16_GPUS):
        return "float16"
    return dtype


def _trust_remote_code(plan: InferencePlan) -> bool:
    """vLLM trusts the model's code for every preset (upstream's default run parameter);
    transformers where the preset family's run parameters say so (Phi)."""
    if plan.runtime == c.RuntimeName.VLLM:
        return True
    return plan.preset is not None and plan.preset.trust_remote_code


def parallelism(plan: InferencePlan) -> Parallelism | None:
    """vLLM's parallelism for the plan; None on the transformers runtime."""
    if plan.runtime != c.RuntimeName.VLLM:
        return None
    return vllm_parallelism(plan.preset, plan.sku, plan.node_count)


def server_args(ws: Workspace, plan: InferencePlan, settings: ControllerSettings) -> list[str]:
    """``python -m kaito_runtime.inference ...``: the server's own command line."""
    flags = InferenceFlags
    command = module_command(
        INFERENCE_MODULE,
        flags.MODEL, plan.model_id,
        flags.SERVED_MODEL_NAME, served_model_name(plan.model_id),
        flags.HOST, POD_IP_REFERENCE,
        flags.PORT, str(settings.server_port),
        flags.BACKEND, plan.runtime,
        flags.ADAPTERS_DIR, ADAPTER_DIR,
        flags.CONFIG_FILE, INFERENCE_CONFIG_PATH,
        flags.DTYPE, _dtype(plan),
    )  # fmt: skip
    if _trust_remote_code(plan):
        command.append(flags.TRUST_REMOTE_CODE)
    spread = parallelism(plan)
    if spread is None:
        return command
    command += [flags.MAX_MODEL_LEN, MAX_MODEL_LEN_AUTO]
    if plan.sku is not None:
        command += [flags.GPU_MEMORY_UTILIZATION, f"{gpu_memory_utilization(plan.sku):g}"]
    if spread.data is not None:
        command += [flags.DATA_PARALLEL_SIZE, str(spread.data)]
    command += [flags.TENSOR_PARALLEL_SIZE, str(spread.tensor)]
    if spread.pipeline is not None:
        command += [flags.PIPELINE_PARALLEL_SIZE, str(spread.pipeline)]
    if spread.executor is not None:
        command += [flags.DISTRIBUTED_EXECUTOR_BACKEND, spread.executor]
    return command


def is_multi_node(plan: InferencePlan) -> bool:
    """vLLM on several nodes (upstream's ``shouldUseDistributedInference``)."""
    spread = parallelism(plan)
    return spread is not None and spread.multi_node


def server_command(ws: Workspace, plan: InferencePlan, settings: ControllerSettings) -> list[str]:
    """The inference container's command: the server, or on several nodes the Ray launcher
    (leader: Ray head then the server; workers: a Ray node) with the server after ``--``."""
    server = server_args(ws, plan, settings)
    if not is_multi_node(plan):
        return server
    launch = LaunchFlags
    return [
        *module_command(
            LAUNCH_MODULE,
            launch.RAY,
            launch.NODES, str(plan.node_count),
            launch.LEADER_ADDRESS, ray_leader_address(ws),
            launch.RAY_PORT, str(RAY_PORT),
        ),
        launch.SEPARATOR,
        *server,
    ]  # fmt: skip


def startup_failure_threshold(preset: Preset | None) -> int:
    """Startup probe failures allowed: the budget for the model's size over the 10 s period."""
    size = preset.model_size if preset is not None else None
    seconds = float(_STARTUP_FLOOR_S)
    if size is not None:
        seconds = min(
            _STARTUP_CAP_S, max(_STARTUP_FLOOR_S, _STARTUP_BASE_S + _STARTUP_PER_GIB_S * size)
        )
    return math.ceil(seconds / _PROBE_PERIOD_S)


def _http_probes(plan: InferencePlan, settings: ControllerSettings) -> dict[str, Any]:
    get = {"httpGet": {"path": HEALTH_PATH, "port": settings.server_port}}
    return {
        "startupProbe": {
            **get,
            "periodSeconds": _PROBE_PERIOD_S,
            "failureThreshold": startup_failure_threshold(plan.preset),
        },
        "livenessProbe": {**get, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**get, "initialDelaySeconds": 30, "periodSeconds": 10},
    }


def _health_command(
    ws: Workspace, plan: InferencePlan, probe: str, settings: ControllerSettings
) -> list[str]:
    launch = LaunchFlags
    command = module_command(
        LAUNCH_MODULE, launch.HEALTH, probe, launch.LEADER_ADDRESS, ray_leader_address(ws)
    )
    if probe == launch.LIVENESS:
        command += [launch.RAY_PORT, str(RAY_PORT), launch.NODES, str(plan.node_count)]
    else:
        command += [launch.SERVER_PORT, str(settings.server_port)]
    return command


def _exec_probes(
    ws: Workspace, plan: InferencePlan, settings: ControllerSettings
) -> dict[str, Any]:
    """Upstream's multi-node probes (``multi-node-health-check.py``), through our launcher."""

    def readiness() -> dict[str, Any]:
        return {"exec": {"command": _health_command(ws, plan, LaunchFlags.READINESS, settings)}}

    liveness = {"exec": {"command": _health_command(ws, plan, LaunchFlags.LIVENESS, settings)}}
    return {
        "startupProbe": {
            **readiness(),
            "periodSeconds": _PROBE_PERIOD_S,
            "timeoutSeconds": 1,
            "failureThreshold": startup_failure_threshold(plan.preset),
        },
        "livenessProbe": {
            **liveness,
            "initialDelaySeconds": 60,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 1,
            "terminationGracePeriodSeconds": 1,
        },
        "readinessProbe": {
            **readiness(),
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
        },
    }


@attrs.define
class _AdapterParts:
    init_containers: list[dict[str, Any]] = attrs.field(factory=list)
    volumes: list[dict[str, Any]] = attrs.field(factory=list)
    mounts: list[dict[str, Any]] = attrs.field(factory=list)
    env: list[dict[str, Any]] = attrs.field(factory=list)


def _adapter_parts(
    adapters: tuple[AdapterSpec, ...], settings: ControllerSettings
) -> _AdapterParts:
    """Upstream's ``SetAdapterPuller``: image adapters pulled by ``puller-<name>`` init
    containers into a shared ``adapter-volume``, volume adapters mounted at their directory,
    each strength (when given) in an env var named after the adapter."""
    parts = _AdapterParts()
    with_source = [a for a in adapters if a.source is not None and a.source.name]
    images = [a for a in with_source if a.source is not None and a.source.volume_source is None]
    volumes = [
        a for a in with_source if a.source is not None and a.source.volume_source is not None
    ]
    if images:
        parts.volumes.append({"name": "adapter-volume", "emptyDir": {}})
        parts.mounts.append({"name": "adapter-volume", "mountPath": ADAPTER_DIR})
    for adapter in images:
        assert adapter.source is not None
        name = adapter.source.name
        target = f"{ADAPTER_DIR}/{name}"
        command = module_command(
            ADAPTERS_MODULE, AdapterFlags.PULL, adapter.source.image or "", target
        )
        init_mounts: list[dict[str, Any]] = [{"name": "adapter-volume", "mountPath": ADAPTER_DIR}]
        if adapter.source.image_pull_secrets:
            volume, mount, directory = docker_config_volume(
                f"{name}-inference-adapter", adapter.source.image_pull_secrets
            )
            parts.volumes.append(volume)
            init_mounts.append(mount)
            command += [AdapterFlags.DOCKER_CONFIG, directory]
        parts.init_containers.append(
            {
                "name": f"puller-{name}",
                "image": settings.runtime_image,
                "imagePullPolicy": settings.runtime_image_pull_policy,
                "command": command,
                "volumeMounts": init_mounts,
                "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
            }
        )
        if adapter.strength is not None:
            parts.env.append({"name": name, "value": adapter.strength})
    for adapter in volumes:
        assert adapter.source is not None
        assert adapter.source.volume_source is not None
        name = adapter.source.name
        volume_name = f"adapter-volume-{name}"
        parts.volumes.append({"name": volume_name, **adapter.source.volume_source})
        parts.mounts.append({"name": volume_name, "mountPath": f"{ADAPTER_DIR}/{name}"})
        if adapter.strength is not None:
            parts.env.append({"name": name, "value": adapter.strength})
    return parts


def image_pull_secrets(adapters: tuple[AdapterSpec, ...]) -> list[dict[str, str]]:
    """Every adapter's pull secrets, in order (upstream's ``GetInferenceImageInfo``)."""
    return [
        {"name": secret}
        for adapter in adapters
        if adapter.source is not None
        for secret in adapter.source.image_pull_secrets or ()
    ]


def _env(
    ws: Workspace, plan: InferencePlan, adapters: _AdapterParts, multi_node: bool
) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [pod_ip_env()]
    if plan.runtime == c.RuntimeName.VLLM:
        env += [
            {"name": "VLLM_USE_FLASHINFER_SAMPLER", "value": "0"},
            {"name": "VLLM_USE_DEEP_GEMM", "value": "0"},
        ]
    env.append({"name": HF_HOME_ENV, "value": WEIGHTS_DIR})
    options = ws.inference.preset.preset_options if ws.inference and ws.inference.preset else None
    if options and options.model_access_secret:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": options.model_access_secret,
                        "key": "HF_TOKEN",
                        "optional": True,
                    }
                },
            }
        )
    env += adapters.env
    if multi_node:
        env.append(
            {
                "name": POD_INDEX_ENV,
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{POD_INDEX_LABEL}']"}},
            }
        )
    return env


def pod_affinity_requirements(ws: Workspace, settings: ControllerSettings) -> list[dict[str, Any]]:
    """The selector's labels, plus (with node auto-provisioning) the provisioned nodes'
    Workspace labels, so pods land only on this Workspace's nodes."""
    requirements = selector_requirements(ws)
    if settings.node_auto_provisioning:
        requirements += provisioner_node_selector(ws)
    return requirements


def inference_statefulset(
    ws: Workspace, plan: InferencePlan, settings: ControllerSettings
) -> dict[str, Any]:
    """The StatefulSet serving the model (one pod per node of the plan)."""
    assert ws.inference is not None
    name = ws.metadata.name or ""
    adapters_spec = ws.inference.adapters or ()
    adapters = _adapter_parts(adapters_spec, settings)
    multi_node = is_multi_node(plan)
    config, config_mount = config_volume(inference_config_name(ws))
    shm, shm_mount = shm_volume()
    ports: list[dict[str, Any]] = [{"name": "http", "containerPort": settings.server_port}]
    container = {
        "name": name,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.runtime_image_pull_policy,
        "command": server_command(ws, plan, settings),
        "resources": gpu_resources(plan.sku),
        "ports": ports,
        **(_exec_probes(ws, plan, settings) if multi_node else _http_probes(plan, settings)),
        "volumeMounts": [config_mount, weights_mount(), shm_mount, *adapters.mounts],
        "env": _env(ws, plan, adapters, multi_node),
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    volumes: list[dict[str, Any]] = [config, shm, *adapters.volumes]
    pod_spec: dict[str, Any] = {}
    if adapters.init_containers:
        pod_spec["initContainers"] = adapters.init_containers
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    pod_spec["tolerations"] = inference_tolerations(settings.cloud)
    affinity = node_affinity(pod_affinity_requirements(ws, settings))
    if affinity is not None:
        pod_spec["affinity"] = affinity
    pull_secrets = image_pull_secrets(adapters_spec)
    if pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secrets
    selector = workspace_selector(ws)
    spec: dict[str, Any] = {
        "replicas": plan.node_count,
        "podManagementPolicy": "Parallel",
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain", "whenDeleted": "Delete"},
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": dict(selector),
                "annotations": {PARAMETERS_HASH_ANNOTATION: parameters_hash(plan.config_text)},
            },
            "spec": pod_spec,
        },
        "serviceName": headless_service_name(ws),
    }
    if plan.sku is not None and plan.sku.nvme and settings.local_nvme_storage_class:
        disk = plan.preset.disk if plan.preset else 1024
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": MODEL_WEIGHTS_VOLUME, "labels": {c.LABEL_WORKSPACE: name}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": settings.local_nvme_storage_class,
                    "resources": {"requests": {"storage": f"{disk:g}Gi"}},
                },
            }
        ]
    else:
        volumes.append({"name": MODEL_WEIGHTS_VOLUME, "emptyDir": {}})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": INFERENCE_SET.name(name),
            "namespace": ws.metadata.namespace,
            "labels": workspace_labels(ws),
            "annotations": {c.ANNOTATION_REVISION: plan.revision},
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "spec": spec,
    }
