"""The objects an inference Workspace owns: parameters ConfigMap, Services and the StatefulSet.

Controller layer (pure functions returning JSON dicts). Shapes follow upstream KAITO (reference
section 3): a StatefulSet named after the Workspace with a headless Service, the main Service on
port 80 to the server's 5000, GPUs requested from the SKU, tolerations for GPU taints, node
affinity on the selector's labels, ``/dev/shm`` in memory, the parameters at ``/mnt/config`` and
adapters under ``/mnt/adapter/<name>``.
"""

from __future__ import annotations

import math
from typing import Any, Final

import attrs
import yaml

from kaito.api import constants as c
from kaito.api.spec import AdapterSpec
from kaito.api.v1beta1 import Workspace
from kaito.api.validation import selector_as_map
from kaito.catalog import SKU, Preset, gpu_memory_utilization
from kaito.controllers._naming import (
    controller_owner_reference,
    headless_service_name,
    inference_config_name,
    workspace_labels,
)
from kaito.controllers._owned import INFERENCE_SERVICE, INFERENCE_SET
from kaito.controllers._settings import ControllerSettings
from kaito_runtime.contract import (
    ADAPTER_DIR,
    ADAPTERS_MODULE,
    CONFIG_DIR,
    DOCKER_CONFIG_DIR,
    HEALTH_PATH,
    HF_HOME_ENV,
    INFERENCE_CONFIG_PATH,
    INFERENCE_MODULE,
    POD_IP_REFERENCE,
    SHM_DIR,
    TERMINATION_MESSAGE_POLICY,
    WEIGHTS_DIR,
    AdapterFlags,
    InferenceFlags,
    module_command,
    pod_ip_env,
)

__all__ = (
    "InferencePlan",
    "inference_config_map",
    "inference_services",
    "inference_statefulset",
    "merge_inference_config",
)

POD_NAME_LABEL: Final = "statefulset.kubernetes.io/pod-name"
_NO_BF16_GPUS: Final = ("V100", "T4", "M60", "K80", "P100", "P40")
_STARTUP_FLOOR_S: Final = 30 * 60
_STARTUP_PER_GIB_S: Final = 18
_STARTUP_CAP_S: Final = 180 * 60
_PROBE_PERIOD_S: Final = 10


@attrs.frozen
class InferencePlan:
    """What the inference workload is rendered from (besides the Workspace itself)."""

    preset: Preset | None
    model_id: str
    sku: SKU | None
    node_count: int
    runtime: str
    #: The merged inference_config.yaml text mounted at /mnt/config.
    config_text: str
    revision: str


def merge_inference_config(default_text: str, user_text: str | None) -> str:
    """The parameters file: the defaults with the user's ConfigMap merged over them (deeply)."""
    base = yaml.safe_load(default_text) or {}
    if user_text:
        _deep_merge(base, yaml.safe_load(user_text) or {})
    return yaml.safe_dump(base, sort_keys=False)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


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
    """The main Service (port 80 to the server, 29500 as the guide shows) and the headless one."""
    labels = workspace_labels(ws)
    name = ws.metadata.name or ""
    enable_lb = (ws.metadata.annotations or {}).get(c.ANNOTATION_ENABLE_LB) == "True"
    meta = {
        "namespace": ws.metadata.namespace,
        "labels": labels,
        "ownerReferences": [controller_owner_reference(ws)],
    }
    main = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": INFERENCE_SERVICE.name(name), **meta},
        "spec": {
            "type": "LoadBalancer" if enable_lb else "ClusterIP",
            "selector": {**labels, POD_NAME_LABEL: f"{INFERENCE_SET.name(name)}-0"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": settings.server_port, "protocol": "TCP"},
                {"name": "torchrun", "port": 29500, "targetPort": 29500, "protocol": "TCP"},
                {"name": "ray", "port": 6379, "targetPort": 6379, "protocol": "TCP"},
                {"name": "dashboard", "port": 8265, "targetPort": 8265, "protocol": "TCP"},
            ],
        },
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": headless_service_name(ws), **meta},
        "spec": {
            "clusterIP": "None",
            "selector": labels,
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "http", "port": settings.server_port, "protocol": "TCP"},
                {"name": "torchrun", "port": 29500, "protocol": "TCP"},
            ],
        },
    }
    return [main, headless]


def gpu_resource_name(sku: SKU | None) -> str:
    if sku is not None and sku.gpu_model.startswith(("AMD", "Radeon")):
        return "amd.com/gpu"
    return "nvidia.com/gpu"


def tolerations(settings: ControllerSettings) -> list[dict[str, Any]]:
    """Tolerations for the GPU taints KAITO's nodes carry."""
    out = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    ]
    if settings.cloud == "azure":
        out.append(
            {
                "key": "kubernetes.azure.com/scalesetpriority",
                "operator": "Equal",
                "value": "spot",
                "effect": "NoSchedule",
            }
        )
    return out


def node_affinity(ws: Workspace) -> dict[str, Any]:
    """Required node affinity on each (non-reserved) label of the Workspace's selector."""
    selector = selector_as_map(ws.resource.label_selector if ws.resource else None) or {}
    expressions = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(selector.items())
        if key not in c.RESERVED_SELECTOR_LABELS
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def _dtype(plan: InferencePlan) -> str | None:
    dtype = plan.preset.dtype if plan.preset else None
    if dtype in (None, "auto"):
        return None
    if dtype == "bfloat16" and plan.sku and any(g in plan.sku.gpu_model for g in _NO_BF16_GPUS):
        return "float16"  # this GPU generation has no bfloat16
    return dtype


def _tensor_parallel(plan: InferencePlan) -> int:
    """One GPU when the model fits on one with room to spare, else every GPU of the node."""
    if plan.sku is None or plan.preset is None:
        return 1
    size = plan.preset.model_size or plan.preset.total_gpu_memory
    if size * 2 < plan.sku.per_gpu_memory:
        return 1
    return plan.sku.gpu_count


def server_command(ws: Workspace, plan: InferencePlan, settings: ControllerSettings) -> list[str]:
    """The inference container's command (``python -m kaito_runtime.inference ...``)."""
    served = ws.inference.preset.name if ws.inference and ws.inference.preset else plan.model_id
    flags = InferenceFlags
    command = module_command(
        INFERENCE_MODULE,
        flags.MODEL,
        plan.model_id,
        flags.SERVED_MODEL_NAME,
        served,
        flags.HOST,
        POD_IP_REFERENCE,
        flags.PORT,
        str(settings.server_port),
        flags.BACKEND,
        plan.runtime,
        flags.ADAPTERS_DIR,
        ADAPTER_DIR,
        flags.CONFIG_FILE,
        INFERENCE_CONFIG_PATH,
    )
    dtype = _dtype(plan)
    if dtype:
        command += [flags.DTYPE, dtype]
    if plan.runtime == c.RuntimeName.VLLM and plan.sku is not None:
        command += [flags.GPU_MEMORY_UTILIZATION, f"{gpu_memory_utilization(plan.sku):g}"]
        command += [flags.TENSOR_PARALLEL_SIZE, str(_tensor_parallel(plan))]
    return command


def _startup_failure_threshold(plan: InferencePlan) -> int:
    size = (plan.preset.model_size or plan.preset.total_gpu_memory) if plan.preset else 0
    seconds = min(_STARTUP_CAP_S, _STARTUP_FLOOR_S + _STARTUP_PER_GIB_S * size)
    return math.ceil(seconds / _PROBE_PERIOD_S)


def _adapter_init_containers(
    adapters: tuple[AdapterSpec, ...], settings: ControllerSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Init containers pulling image adapters, plus the volumes and main-container mounts."""
    inits: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if any(a.source and a.source.image for a in adapters):
        volumes.append({"name": "adapter-volume", "emptyDir": {}})
        mounts.append({"name": "adapter-volume", "mountPath": ADAPTER_DIR})
    for adapter in adapters:
        source = adapter.source
        if source is None or not source.name:
            continue
        target = f"{ADAPTER_DIR}/{source.name}"
        if source.image:
            command = module_command(ADAPTERS_MODULE, AdapterFlags.PULL, source.image, target)
            init_mounts: list[dict[str, Any]] = [
                {"name": "adapter-volume", "mountPath": ADAPTER_DIR}
            ]
            if source.image_pull_secrets:
                secret_volume = f"{source.name}-inference-adapter"
                config_dir = f"{DOCKER_CONFIG_DIR}/config.d/{secret_volume}"
                volumes.append(
                    {
                        "name": secret_volume,
                        "secret": {"secretName": source.image_pull_secrets[0]},
                    }
                )
                init_mounts.append(
                    {"name": secret_volume, "mountPath": config_dir, "readOnly": True}
                )
                command += [AdapterFlags.DOCKER_CONFIG, config_dir]
            inits.append(
                {
                    "name": f"puller-{source.name}",
                    "image": settings.runtime_image,
                    "imagePullPolicy": settings.runtime_image_pull_policy,
                    "command": command,
                    "volumeMounts": init_mounts,
                    "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
                }
            )
        elif source.volume_source is not None:
            volume_name = f"adapter-{source.name}"
            volumes.append({"name": volume_name, **source.volume_source})
            mounts.append({"name": volume_name, "mountPath": target, "readOnly": True})
    return inits, volumes, mounts


def inference_statefulset(
    ws: Workspace, plan: InferencePlan, settings: ControllerSettings
) -> dict[str, Any]:
    """The StatefulSet serving the model (one pod per node of the plan)."""
    assert ws.inference is not None
    name = ws.metadata.name or ""
    labels = workspace_labels(ws)
    adapters = ws.inference.adapters or ()
    inits, adapter_volumes, adapter_mounts = _adapter_init_containers(adapters, settings)
    env: list[dict[str, Any]] = [pod_ip_env(), {"name": HF_HOME_ENV, "value": WEIGHTS_DIR}]
    options = ws.inference.preset.preset_options if ws.inference.preset else None
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
    if plan.runtime == c.RuntimeName.VLLM:
        env.append({"name": "VLLM_USE_FLASHINFER_SAMPLER", "value": "0"})
    for adapter in adapters:
        if adapter.source and adapter.source.name:
            env.append({"name": adapter.source.name, "value": adapter.strength or "1.0"})
    gpus = str(plan.sku.gpu_count) if plan.sku else "1"
    gpu_resource = gpu_resource_name(plan.sku)
    probe: dict[str, Any] = {"httpGet": {"path": HEALTH_PATH, "port": settings.server_port}}
    container = {
        "name": name,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.runtime_image_pull_policy,
        "command": server_command(ws, plan, settings),
        "ports": [{"name": "http", "containerPort": settings.server_port, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": {gpu_resource: gpus}, "limits": {gpu_resource: gpus}},
        "startupProbe": {
            **probe,
            "periodSeconds": _PROBE_PERIOD_S,
            "failureThreshold": _startup_failure_threshold(plan),
        },
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**probe, "initialDelaySeconds": 30, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "dshm", "mountPath": SHM_DIR},
            {"name": "config-volume", "mountPath": CONFIG_DIR},
            {"name": "model-weights-volume", "mountPath": WEIGHTS_DIR},
            *adapter_mounts,
        ],
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "config-volume", "configMap": {"name": inference_config_name(ws)}},
        *adapter_volumes,
    ]
    spec: dict[str, Any] = {
        "replicas": plan.node_count,
        "podManagementPolicy": "Parallel",
        "serviceName": headless_service_name(ws),
        "selector": {"matchLabels": labels},
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain", "whenDeleted": "Delete"},
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {c.ANNOTATION_REVISION: plan.revision},
            },
            "spec": {
                "initContainers": inits,
                "containers": [container],
                "volumes": volumes,
                "tolerations": tolerations(settings),
                "affinity": node_affinity(ws),
            },
        },
    }
    if plan.sku is not None and plan.sku.nvme and settings.local_nvme_storage_class:
        disk = plan.preset.disk if plan.preset else 1024
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "model-weights-volume"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": settings.local_nvme_storage_class,
                    "resources": {"requests": {"storage": f"{disk:g}Gi"}},
                },
            }
        ]
    else:
        volumes.append({"name": "model-weights-volume", "emptyDir": {}})
    if not inits:
        del spec["template"]["spec"]["initContainers"]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": INFERENCE_SET.name(name),
            "namespace": ws.metadata.namespace,
            "labels": labels,
            "annotations": {c.ANNOTATION_REVISION: plan.revision},
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "spec": spec,
    }
