"""The objects a tuning Workspace owns: the training-parameters ConfigMap and the Job.

Controller layer (pure functions returning JSON dicts). Field by field upstream KAITO v0.12's
``pkg/workspace/tuning``: a Job named after the Workspace whose one container (named after the
Workspace too) trains with one process per GPU of the node (``accelerate launch``, here through
``python -m kaito_runtime.launch tuning``), the input fetched by an init container (URLs, an
image) or mounted (a volume) at ``/mnt/data``, the parameters at ``/mnt/config``, the results
volume at the configured ``output_dir``. The adapter is pushed to ``output.image`` by the tuning
container itself after training (upstream: a pusher sidecar), see ``docs/upstream-parity.md``.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any, Final

import attrs
import yaml

from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.catalog import SKU, Preset
from kaito.controllers._naming import (
    controller_owner_reference,
    training_config_name,
    workspace_labels,
)
from kaito.controllers._owned import TUNING_JOB
from kaito.controllers._pod_parts import (
    MODEL_WEIGHTS_VOLUME,
    config_volume,
    docker_config_volume,
    gpu_resources,
    node_affinity,
    push_secret_volume,
    selector_requirements,
    shm_volume,
    tuning_tolerations,
    weights_mount,
    workspace_selector,
)
from kaito.controllers._settings import ControllerSettings
from kaito_runtime.contract import (
    ADAPTERS_MODULE,
    DATA_DIR,
    DATA_MODULE,
    DEFAULT_TARGET_MODULES_ENV,
    DOCKER_CONFIG_DIR,
    HF_HOME_ENV,
    LAUNCH_MODULE,
    PHI3_TARGET_MODULES,
    POD_IP_REFERENCE,
    TERMINATION_MESSAGE_POLICY,
    TUNING_CONFIG_PATH,
    WEIGHTS_DIR,
    AdapterFlags,
    DataFlags,
    LaunchFlags,
    TuningFlags,
    module_command,
    pod_ip_env,
)

__all__ = ("DEFAULT_OUTPUT_DIR", "TuningPlan", "output_dir", "training_config_map", "tuning_job")

#: Where results go when the parameters name no ``output_dir`` (upstream's default).
DEFAULT_OUTPUT_DIR: Final = "/mnt/output"
_BASE_DIR: Final = "/mnt"


@attrs.frozen
class TuningPlan:
    """What the tuning Job is rendered from (besides the Workspace itself)."""

    preset: Preset
    sku: SKU | None
    #: The training_config.yaml text (the user's ConfigMap or the method's template).
    config_text: str
    #: The Workspace's revision number (``workspace.kaito.io/revision``).
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


def output_dir(config_text: str) -> str:
    """``TrainingArguments.output_dir`` as upstream's ``PrepareOutputDir`` places it: under
    ``/mnt`` (a relative path is joined to it), :data:`DEFAULT_OUTPUT_DIR` when unset or when it
    would leave ``/mnt`` (admission refuses such a value first)."""
    try:
        config = yaml.safe_load(config_text) or {}
        value = config["training_config"]["TrainingArguments"]["output_dir"]
    except (yaml.YAMLError, KeyError, TypeError):
        return DEFAULT_OUTPUT_DIR
    if not isinstance(value, str) or not value:
        return DEFAULT_OUTPUT_DIR
    path = value if value.startswith(_BASE_DIR) else posixpath.join(_BASE_DIR, value)
    path = posixpath.normpath(path)
    if path == _BASE_DIR or not path.startswith(_BASE_DIR + "/"):
        return DEFAULT_OUTPUT_DIR
    return path


def _input_parts(
    ws: Workspace, settings: ControllerSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Upstream's ``prepareDataSource``: the init container fetching the input (none for a
    volume), the volumes, and the mounts every container of the pod gets."""
    assert ws.tuning is not None
    source = ws.tuning.input
    data_mount = {"name": "data-volume", "mountPath": DATA_DIR}
    if source.volume_source is not None:
        return [], [{"name": "data-volume", **source.volume_source}], [data_mount]
    data_volume = {"name": "data-volume", "emptyDir": {}}
    command = module_command(DATA_MODULE, DataFlags.FETCH, DataFlags.DEST, DATA_DIR)
    if source.image:
        secret_volume, secret_mount, directory = docker_config_volume(
            f"{source.name}-tuning-input", source.image_pull_secrets or ()
        )
        command += [DataFlags.IMAGE, source.image]
        if source.image_pull_secrets:
            command += [DataFlags.DOCKER_CONFIG, directory]
        mounts = [secret_mount, data_mount]
        name, volumes = "puller", [secret_volume, data_volume]
    else:
        for url in source.urls or ():
            command += [DataFlags.URL, url]
        if settings.allow_local_urls:
            command.append(DataFlags.ALLOW_LOCAL)
        mounts = [data_mount]
        name, volumes = "data-downloader", [data_volume]
    init = {
        "name": name,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.runtime_image_pull_policy,
        "command": command,
        "volumeMounts": mounts,
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    return [init], volumes, mounts


def _tuning_command(ws: Workspace, plan: TuningPlan, results: str) -> list[str]:
    """One tuning process per GPU of the node through the launcher (upstream's ``accelerate
    launch --num_processes=<GPUs>``), then the push of the adapter when the output is an image."""
    assert ws.tuning is not None
    flags = TuningFlags
    gpus = plan.sku.gpu_count if plan.sku is not None else 1
    args = [
        flags.CONFIG, TUNING_CONFIG_PATH,
        flags.DATA_DIR, DATA_DIR,
        flags.OUTPUT_DIR, results,
        flags.MODEL, plan.preset.model_id,
        flags.PRESET, plan.preset.name,
        flags.METHOD, ws.tuning.method or "lora",
        flags.HOST, POD_IP_REFERENCE,
    ]  # fmt: skip
    output = ws.tuning.output
    if output.volume_source is not None:
        # The results volume outlives the pod: checkpoint there so a retried Job resumes.
        args += [flags.CHECKPOINT_DIR, f"{results}/checkpoints"]
    train = module_command(
        LAUNCH_MODULE,
        LaunchFlags.TUNING,
        LaunchFlags.PROCESSES_PER_NODE,
        str(gpus),
        LaunchFlags.SEPARATOR,
        *args,
    )
    if not output.image:
        return train
    push = module_command(
        ADAPTERS_MODULE,
        AdapterFlags.PUSH,
        results,
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
    output = ws.tuning.output
    results = output_dir(plan.config_text)
    shm, shm_mount = shm_volume()
    config, config_mount = config_volume(training_config_name(ws))
    results_volume = {"name": "results-volume", **(output.volume_source or {"emptyDir": {}})}
    results_mount = {"name": "results-volume", "mountPath": results}
    inits, input_volumes, input_mounts = _input_parts(ws, settings)
    volumes: list[dict[str, Any]] = [
        shm,
        {"name": MODEL_WEIGHTS_VOLUME, "emptyDir": {}},
        config,
        results_volume,
        *input_volumes,
    ]
    mounts = [shm_mount, weights_mount(), config_mount, results_mount, *input_mounts]
    pod_spec: dict[str, Any] = {}
    if output.image and output.image_push_secret:
        secret, secret_mount = push_secret_volume(output.image_push_secret)
        volumes.append(secret)
        mounts.append(secret_mount)
        pod_spec["imagePullSecrets"] = [{"name": output.image_push_secret}]
    env = [pod_ip_env()]
    if plan.preset.name.lower().startswith("phi-3"):
        env.append({"name": DEFAULT_TARGET_MODULES_ENV, "value": ",".join(PHI3_TARGET_MODULES)})
    env += [
        {"name": "PYTORCH_CUDA_ALLOC_CONF", "value": "expandable_segments:True"},
        {"name": HF_HOME_ENV, "value": WEIGHTS_DIR},
    ]
    container = {
        "name": name,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.runtime_image_pull_policy,
        "command": _tuning_command(ws, plan, results),
        "resources": gpu_resources(plan.sku),
        "ports": [{"containerPort": settings.server_port}],
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    pod_spec["tolerations"] = tuning_tolerations(settings.cloud)
    if inits:
        pod_spec["initContainers"] = inits
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    pod_spec["restartPolicy"] = "Never"
    affinity = node_affinity(selector_requirements(ws))
    if affinity is not None:
        pod_spec["affinity"] = affinity
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": TUNING_JOB.name(name),
            "namespace": ws.metadata.namespace,
            "labels": workspace_labels(ws),
            "annotations": {c.ANNOTATION_REVISION: plan.revision},
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "spec": {
            "template": {"metadata": {"labels": workspace_selector(ws)}, "spec": pod_spec},
        },
    }
