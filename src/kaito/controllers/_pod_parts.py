"""Pieces every KAITO pod is built from: tolerations, node affinity, GPUs, volumes, secrets.

Controller layer (pure functions returning JSON), each one upstream KAITO's (``pkg/utils``,
``pkg/workspace/inference``, ``pkg/workspace/tuning``) field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kaito.api import constants as c
from kaito.api import selector_as_map
from kaito.api.v1beta1 import Workspace
from kaito.catalog import SKU
from kaito_runtime.contract import CONFIG_DIR, DOCKER_CONFIG_DIR, SHM_DIR, WEIGHTS_DIR

__all__ = (
    "MODEL_WEIGHTS_VOLUME",
    "config_volume",
    "docker_config_volume",
    "gpu_resource_name",
    "gpu_resources",
    "inference_tolerations",
    "node_affinity",
    "provisioner_node_selector",
    "push_secret_volume",
    "selector_requirements",
    "shm_volume",
    "tuning_tolerations",
    "weights_mount",
    "workspace_selector",
)

MODEL_WEIGHTS_VOLUME: Final = "model-weights-volume"
_SPOT: Final = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def workspace_selector(ws: Workspace) -> dict[str, str]:
    """The pods' selector and template labels: ``kaito.sh/workspace: <ws>`` (upstream's)."""
    return {c.LABEL_WORKSPACE: ws.metadata.name or ""}


def gpu_resource_name(sku: SKU | None) -> str:
    """``nvidia.com/gpu``, or ``amd.com/gpu`` on AMD SKUs."""
    if sku is not None and sku.gpu_model.startswith(("AMD", "Radeon")):
        return "amd.com/gpu"
    return "nvidia.com/gpu"


def gpu_resources(sku: SKU | None) -> dict[str, Any]:
    """Requests and limits of every GPU of the node (the SKU's count; 1 when unknown)."""
    name = gpu_resource_name(sku)
    count = str(sku.gpu_count if sku is not None else 1)
    return {"requests": {name: count}, "limits": {name: count}}


def inference_tolerations(cloud: str) -> list[dict[str, Any]]:
    """Upstream's inference tolerations: any ``nvidia.com/gpu`` taint, ``sku=gpu``, Azure spot."""
    out: list[dict[str, Any]] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    ]
    if cloud == "azure":
        out.append(dict(_SPOT))
    return out


def tuning_tolerations(cloud: str) -> list[dict[str, Any]]:
    """Upstream's tuning tolerations: ``gpu`` (Equal, no value), ``sku=gpu`` (no operator,
    which Kubernetes reads as Equal), Azure spot."""
    out: list[dict[str, Any]] = [
        {"key": "gpu", "operator": "Equal", "effect": "NoSchedule"},
        {"key": "sku", "value": "gpu", "effect": "NoSchedule"},
    ]
    if cloud == "azure":
        out.append(dict(_SPOT))
    return out


def selector_requirements(ws: Workspace) -> list[dict[str, Any]]:
    """``In`` requirements on each (non-reserved) label of the Workspace's selector, sorted."""
    selector = selector_as_map(ws.resource.label_selector if ws.resource else None) or {}
    return [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(selector.items())
        if key not in c.RESERVED_SELECTOR_LABELS
    ]


def provisioner_node_selector(ws: Workspace) -> list[dict[str, Any]]:
    """The requirements that pin pods to the nodes provisioned for this Workspace (upstream's
    ``BuildNodeSelector``: the nodes' ``kaito.sh/workspace``/``kaito.sh/workspacenamespace``)."""
    return [
        {"key": c.LABEL_WORKSPACE, "operator": "In", "values": [ws.metadata.name or ""]},
        {
            "key": c.LABEL_WORKSPACE_NAMESPACE,
            "operator": "In",
            "values": [ws.metadata.namespace or "default"],
        },
    ]


def node_affinity(requirements: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A required node affinity of one term, or None without requirements (an empty
    ``matchExpressions`` is refused by the API server)."""
    expressions = [dict(r) for r in requirements]
    if not expressions:
        return None
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def shm_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """``dshm``: shared memory in RAM at ``/dev/shm``."""
    return {"name": "dshm", "emptyDir": {"medium": "Memory"}}, {
        "name": "dshm",
        "mountPath": SHM_DIR,
    }


def weights_mount() -> dict[str, Any]:
    """The model weights at ``/workspace/weights``."""
    return {"name": MODEL_WEIGHTS_VOLUME, "mountPath": WEIGHTS_DIR}


def config_volume(config_map: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config-volume``: a parameters ConfigMap at ``/mnt/config``."""
    return (
        {"name": "config-volume", "configMap": {"name": config_map}},
        {"name": "config-volume", "mountPath": CONFIG_DIR},
    )


def docker_config_volume(
    suffix: str, secrets: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``docker-config-<suffix>``: every pull secret's ``.dockerconfigjson`` as
    ``<secret>.json`` in one projected volume at ``/root/.docker/config.d/<suffix>`` (upstream's
    ``ConfigImagePullSecretVolume``). Returns the volume, its mount and the directory."""
    name = f"docker-config-{suffix}"
    directory = f"{DOCKER_CONFIG_DIR}/config.d/{suffix}"
    sources = [
        {
            "secret": {
                "name": secret,
                "items": [{"key": ".dockerconfigjson", "path": f"{secret}.json"}],
            }
        }
        for secret in secrets
    ]
    return (
        {"name": name, "projected": {"sources": sources}},
        {"name": name, "mountPath": directory},
        directory,
    )


def push_secret_volume(secret: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``docker-config``: the push secret as ``config.json`` at ``/root/.docker`` (upstream's
    ``ConfigImagePushSecretVolume``)."""
    return (
        {
            "name": "docker-config",
            "projected": {
                "sources": [
                    {
                        "secret": {
                            "name": secret,
                            "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                        }
                    }
                ]
            },
        },
        {"name": "docker-config", "mountPath": DOCKER_CONFIG_DIR},
    )
