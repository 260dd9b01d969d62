"""The objects a tuning Workspace owns: the training-parameters ConfigMap and the Job.

Controller layer (pure functions returning JSON dicts). Shapes follow upstream KAITO (reference
section 4): a Job named after the Workspace whose pod fetches the input in an init container
(URLs, an image, or a mounted volume at /mnt/data), trains in the main container with the
parameters at /mnt/config, writes the adapter to /mnt/results (the output volume when one is
given), and pushes it to ``output.image`` with the ``imagePushSecret`` credentials.
"""

from __future__ import annotations

import shlex
from typing import Any, Final

import attrs

from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.catalog import SKU, Preset
from kaito.controllers._inference_objects import gpu_resource_name, node_affinity, tolerations
from kaito.controllers._naming import (
    controller_owner_reference,
    training_config_name,
    workspace_labels,
)
from kaito.controllers._owned import TUNING_JOB
from kaito.controllers._settings import ControllerSettings
from kaito_runtime.contract import (
    ADAPTERS_MODULE,
    CONFIG_DIR,
    DATA_DIR,
    DATA_MODULE,
    DEFAULT_TARGET_MODULES_ENV,
    DOCKER_CONFIG_DIR,
    HF_HOME_ENV,
    PHI3_TARGET_MODULES,
    POD_IP_REFERENCE,
    RESULTS_DIR,
    SHM_DIR,
    TERMINATION_MESSAGE_POLICY,
    TUNING_CONFIG_PATH,
    TUNING_MODULE,
    WEIGHTS_DIR,
    AdapterFlags,
    DataFlags,
    TuningFlags,
    module_command,
    pod_ip_env,
)

__all__ = ("TuningPlan", "training_config_map", "tuning_job")

JOB_BACKOFF_LIMIT: Final = 3


@attrs.frozen
class TuningPlan:
    """What the tuning Job is rendered from (besides the Workspace itself)."""

    preset: Preset
    sku: SKU | None
    #: The training_config.yaml text (the user's ConfigMap or the method's template).
    config_text: str
    revision: str


def training_config_map(ws: Workspace, plan: TuningPlan) -> dict[str, Any]:
    """The ConfigMap with ``training_config.yaml`` the tuning container reads."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": training_config_name(ws),
            "namespace": ws.metadata.namespace,
            "labels": workspace_labels(ws),
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "data": {c.TUNING_CONFIG_KEY: plan.config_text},
    }


def _input_parts(
    ws: Workspace, settings: ControllerSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Init containers and volumes that put the input data at /mnt/data."""
    assert ws.tuning is not None
    source = ws.tuning.input
    data_mount = {"name": "data-volume", "mountPath": DATA_DIR}
    if source.volume_source is not None:
        return [], [{"name": "data-volume", **source.volume_source}]
    volumes: list[dict[str, Any]] = [{"name": "data-volume", "emptyDir": {}}]
    command = module_command(DATA_MODULE, DataFlags.FETCH, DataFlags.DEST, DATA_DIR)
    mounts = [data_mount]
    if source.urls:
        name = "data-downloader"
        for url in source.urls:
            command += [DataFlags.URL, url]
        if settings.allow_local_urls:
            command.append(DataFlags.ALLOW_LOCAL)
    else:
        name = "data-puller"
        command += [DataFlags.IMAGE, source.image or ""]
        if source.image_pull_secrets:
            volumes.append(
                {
                    "name": "input-pull-secret",
                    "secret": {"secretName": source.image_pull_secrets[0]},
                }
            )
            mounts.append({"name": "input-pull-secret", "mountPath": f"{DOCKER_CONFIG_DIR}/input"})
            command += [DataFlags.DOCKER_CONFIG, f"{DOCKER_CONFIG_DIR}/input"]
    init = {
        "name": name,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.runtime_image_pull_policy,
        "command": command,
        "volumeMounts": mounts,
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    return [init], volumes


def _tuning_command(ws: Workspace, plan: TuningPlan) -> list[str]:
    assert ws.tuning is not None
    flags = TuningFlags
    train = module_command(
        TUNING_MODULE,
        flags.CONFIG,
        TUNING_CONFIG_PATH,
        flags.DATA_DIR,
        DATA_DIR,
        flags.OUTPUT_DIR,
        RESULTS_DIR,
        flags.MODEL,
        plan.preset.model_id,
        flags.PRESET,
        plan.preset.name,
        flags.METHOD,
        ws.tuning.method or "lora",
        flags.HOST,
        POD_IP_REFERENCE,
    )
    output = ws.tuning.output
    if output.volume_source is not None:
        # The results volume outlives the pod: checkpoint there so a retried Job resumes.
        train += [flags.CHECKPOINT_DIR, f"{RESULTS_DIR}/checkpoints"]
    if not output.image:
        return train
    push = module_command(
        ADAPTERS_MODULE,
        AdapterFlags.PUSH,
        RESULTS_DIR,
        output.image,
        AdapterFlags.MODEL_NAME,
        plan.preset.name,
        AdapterFlags.DOCKER_CONFIG,
        DOCKER_CONFIG_DIR,
    )
    # Train, then push the adapter; the Job succeeds only when both did.
    return ["sh", "-c", f"{shlex.join(train)} && {shlex.join(push)}"]


def tuning_job(ws: Workspace, plan: TuningPlan, settings: ControllerSettings) -> dict[str, Any]:
    """The Job that fetches the data, tunes the preset and delivers the adapter."""
    assert ws.tuning is not None
    name = ws.metadata.name or ""
    labels = workspace_labels(ws)
    inits, volumes = _input_parts(ws, settings)
    output = ws.tuning.output
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": SHM_DIR},
        {"name": "config-volume", "mountPath": CONFIG_DIR},
        {"name": "data-volume", "mountPath": DATA_DIR},
        {"name": "results-volume", "mountPath": RESULTS_DIR},
        {"name": "model-weights-volume", "mountPath": WEIGHTS_DIR},
    ]
    volumes += [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "config-volume", "configMap": {"name": training_config_name(ws)}},
        {"name": "model-weights-volume", "emptyDir": {}},
        {"name": "results-volume", **(output.volume_source or {"emptyDir": {}})},
    ]
    if output.image and output.image_push_secret:
        volumes.append(
            {
                "name": "docker-config",
                "secret": {
                    "secretName": output.image_push_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
        mounts.append({"name": "docker-config", "mountPath": DOCKER_CONFIG_DIR, "readOnly": True})
    env = [
        pod_ip_env(),
        {"name": "PYTORCH_CUDA_ALLOC_CONF", "value": "expandable_segments:True"},
        {"name": HF_HOME_ENV, "value": WEIGHTS_DIR},
    ]
    if plan.preset.name.startswith("phi-3"):
        env.append({"name": DEFAULT_TARGET_MODULES_ENV, "value": ",".join(PHI3_TARGET_MODULES)})
    gpus = str(plan.sku.gpu_count) if plan.sku else "1"
    gpu_resource = gpu_resource_name(plan.sku)
    container = {
        "name": "tuning",
        "image": settings.runtime_image,
        "imagePullPolicy": settings.runtime_image_pull_policy,
        "command": _tuning_command(ws, plan),
        "env": env,
        "ports": [{"name": "progress", "containerPort": settings.server_port}],
        "resources": {"requests": {gpu_resource: gpus}, "limits": {gpu_resource: gpus}},
        "volumeMounts": mounts,
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "tolerations": tolerations(settings),
        "affinity": node_affinity(ws),
    }
    if inits:
        pod_spec["initContainers"] = inits
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": TUNING_JOB.name(name),
            "namespace": ws.metadata.namespace,
            "labels": labels,
            "annotations": {c.ANNOTATION_REVISION: plan.revision},
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "spec": {
            "backoffLimit": JOB_BACKOFF_LIMIT,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {c.ANNOTATION_REVISION: plan.revision},
                },
                "spec": pod_spec,
            },
        },
    }
