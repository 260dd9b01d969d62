"""The contract between the operator and its pods: paths, commands, files, formats.

The controller renders pods from these names (``kaito.controllers``) and the programs in the
pods read them (``kaito_runtime``'s command lines), so a change here changes both sides at once
and a change on one side alone fails the tests that parse every rendered command with the
runtime's own parsers. Import-light on purpose: the standard library and attrs only, never
the operator (``kaito``) and never the ML stack, so the manager can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = (
    "ADAPTERS_MODULE",
    "ADAPTER_DIR",
    "CONFIG_DIR",
    "DATA_DIR",
    "DATA_MODULE",
    "DEFAULT_TARGET_MODULES_ENV",
    "DOCKER_CONFIG_DIR",
    "HEALTH_PATH",
    "HF_HOME_ENV",
    "INFERENCE_CONFIG_FILE",
    "INFERENCE_CONFIG_PATH",
    "INFERENCE_MODULE",
    "INFERENCE_PARAMS",
    "LAUNCH_MODULE",
    "LORA_PARAMS",
    "PHI3_TARGET_MODULES",
    "POD_INDEX_ENV",
    "POD_INDEX_LABEL",
    "POD_IP_ENV",
    "POD_IP_REFERENCE",
    "PROGRESS_FILE",
    "PROGRESS_PATH",
    "PROGRESS_PHASES",
    "PYTHON",
    "QLORA_PARAMS",
    "RAY_PORT",
    "RENDEZVOUS_PORT",
    "RESULTS_DIR",
    "SERVER_PORT",
    "SHM_DIR",
    "TERMINATION_LOG",
    "TERMINATION_LOG_ENV",
    "TERMINATION_MESSAGE_MAX_BYTES",
    "TERMINATION_MESSAGE_POLICY",
    "TUNING_CONFIG_FILE",
    "TUNING_CONFIG_PATH",
    "TUNING_MODULE",
    "WEIGHTS_DIR",
    "AdapterFlags",
    "DataFlags",
    "InferenceFlags",
    "LaunchFlags",
    "TuningFlags",
    "TuningProgress",
    "module_command",
    "pod_ip_env",
)

# -- mount paths ---------------------------------------------------------------------------

#: The parameters ConfigMap (``inference_config.yaml`` or ``training_config.yaml``).
CONFIG_DIR: Final = "/mnt/config"
#: Inference adapters, one directory per adapter named after it.
ADAPTER_DIR: Final = "/mnt/adapter"
#: The tuning input data.
DATA_DIR: Final = "/mnt/data"
#: The tuning output: the adapter, ``progress.json``, checkpoints on an output volume.
RESULTS_DIR: Final = "/mnt/results"
#: Model weights (``$HF_HOME``).
WEIGHTS_DIR: Final = "/workspace/weights"
#: Registry credentials (``config.json``) for pushing and pulling images.
DOCKER_CONFIG_DIR: Final = "/root/.docker"
#: Shared memory, an in-memory ``emptyDir``.
SHM_DIR: Final = "/dev/shm"

# -- parameter files -------------------------------------------------------------------------

INFERENCE_CONFIG_FILE: Final = "inference_config.yaml"
TUNING_CONFIG_FILE: Final = "training_config.yaml"
INFERENCE_CONFIG_PATH: Final = f"{CONFIG_DIR}/{INFERENCE_CONFIG_FILE}"
TUNING_CONFIG_PATH: Final = f"{CONFIG_DIR}/{TUNING_CONFIG_FILE}"

# -- programs and their flags ----------------------------------------------------------------

PYTHON: Final = "python"
INFERENCE_MODULE: Final = "kaito_runtime.inference"
TUNING_MODULE: Final = "kaito_runtime.tuning"
DATA_MODULE: Final = "kaito_runtime.data"
ADAPTERS_MODULE: Final = "kaito_runtime.adapters"
#: The launcher of multi-GPU and multi-node pods (accelerate for tuning, Ray for vLLM).
LAUNCH_MODULE: Final = "kaito_runtime.launch"

#: The inference server's port (``/health``, the OpenAI API) and the tuning pod's progress port.
SERVER_PORT: Final = 5000
HEALTH_PATH: Final = "/health"
PROGRESS_PATH: Final = "/progress"
#: The Ray head's port on pod 0 of a multi-node inference Workspace.
RAY_PORT: Final = 6379
#: The rendezvous port of multi-node tuning (torch.distributed's static rendezvous on node 0).
RENDEZVOUS_PORT: Final = 29500


def module_command(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS...``: how a pod runs one of ``kaito_runtime``'s programs."""
    return [PYTHON, "-m", module, *args]


class InferenceFlags:
    """Flags of ``python -m kaito_runtime.inference``."""

    MODEL: Final = "--model"
    SERVED_MODEL_NAME: Final = "--served-model-name"
    #: The address to bind: the Pod's IP (:data:`POD_IP_REFERENCE`), as on a real cluster.
    HOST: Final = "--host"
    PORT: Final = "--port"
    BACKEND: Final = "--backend"
    ADAPTERS_DIR: Final = "--adapters-dir"
    CONFIG_FILE: Final = "--kaito-config-file"
    DTYPE: Final = "--dtype"
    MAX_MODEL_LEN: Final = "--max-model-len"
    TRUST_REMOTE_CODE: Final = "--trust-remote-code"
    GPU_MEMORY_UTILIZATION: Final = "--gpu-memory-utilization"
    TENSOR_PARALLEL_SIZE: Final = "--tensor-parallel-size"
    DATA_PARALLEL_SIZE: Final = "--data-parallel-size"
    PIPELINE_PARALLEL_SIZE: Final = "--pipeline-parallel-size"
    DISTRIBUTED_EXECUTOR_BACKEND: Final = "--distributed-executor-backend"
    #: The values ``--backend`` takes.
    BACKENDS: Final = ("auto", "vllm", "transformers")


class LaunchFlags:
    """The commands of ``python -m kaito_runtime.launch`` and their flags."""

    TUNING: Final = "tuning"
    RAY: Final = "ray"
    HEALTH: Final = "health"
    #: ``health``'s probes.
    READINESS: Final = "readiness"
    LIVENESS: Final = "liveness"
    #: What follows is the launched program's command line (``tuning``: its arguments).
    SEPARATOR: Final = "--"
    PROCESSES_PER_NODE: Final = "--processes-per-node"
    NODES: Final = "--nodes"
    NODE_RANK: Final = "--node-rank"
    MAIN_ADDRESS: Final = "--main-address"
    MAIN_PORT: Final = "--main-port"
    LEADER_ADDRESS: Final = "--leader-address"
    RAY_PORT: Final = "--ray-port"
    SERVER_PORT: Final = "--server-port"


class TuningFlags:
    """Flags of ``python -m kaito_runtime.tuning``."""

    CONFIG: Final = "--config"
    DATA_DIR: Final = "--data-dir"
    OUTPUT_DIR: Final = "--output-dir"
    MODEL: Final = "--model"
    PRESET: Final = "--preset"
    METHOD: Final = "--method"
    CHECKPOINT_DIR: Final = "--checkpoint-dir"
    #: The address ``/progress`` and ``/metrics`` bind: the Pod's IP (:data:`POD_IP_REFERENCE`).
    HOST: Final = "--host"
    METRICS_PORT: Final = "--metrics-port"
    #: The values ``--method`` takes.
    METHODS: Final = ("lora", "qlora")


class DataFlags:
    """The ``fetch`` command of ``python -m kaito_runtime.data`` and its flags."""

    FETCH: Final = "fetch"
    DEST: Final = "--dest"
    URL: Final = "--url"
    VOLUME: Final = "--volume"
    IMAGE: Final = "--image"
    DOCKER_CONFIG: Final = "--docker-config"
    ALLOW_LOCAL: Final = "--allow-local"


class AdapterFlags:
    """The commands of ``python -m kaito_runtime.adapters`` and their flags."""

    PULL: Final = "pull"
    PUSH: Final = "push"
    DOCKER_CONFIG: Final = "--docker-config"
    MODEL_NAME: Final = "--model-name"
    PLAIN_HTTP: Final = "--plain-http"


# -- environment -----------------------------------------------------------------------------

#: A pod's index in its StatefulSet (or Indexed Job): 0 is the leader of a multi-node Workspace.
POD_INDEX_ENV: Final = "POD_INDEX"
#: The label the StatefulSet controller puts on each pod, projected into :data:`POD_INDEX_ENV`.
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"
#: Where the Hugging Face cache (the weights) lives: :data:`WEIGHTS_DIR`.
HF_HOME_ENV: Final = "HF_HOME"
#: The Pod's IP, from the downward API (``status.podIP``); servers bind it, not ``0.0.0.0``,
#: so two Pods sharing a machine's network (the local kubelet) never clash on a port.
POD_IP_ENV: Final = "POD_IP"
#: ``$(POD_IP)``: the kubelet expands it in the command from :data:`POD_IP_ENV`.
POD_IP_REFERENCE: Final = f"$({POD_IP_ENV})"


def pod_ip_env() -> dict[str, Any]:
    """The container env entry that gives a program its Pod's IP (the downward API)."""
    return {"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


#: Comma-separated LoRA target modules the controller sets for Phi-3 presets (as upstream).
DEFAULT_TARGET_MODULES_ENV: Final = "DEFAULT_TARGET_MODULES"
PHI3_TARGET_MODULES: Final = (
    "k_proj",
    "q_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "down_proj",
    "up_proj",
)

# -- termination message ---------------------------------------------------------------------

#: The container's ``terminationMessagePath`` (Kubernetes' default), read into the pod status.
TERMINATION_LOG: Final = "/dev/termination-log"
#: Overrides :data:`TERMINATION_LOG` (outside a pod, and in tests).
TERMINATION_LOG_ENV: Final = "KAITO_TERMINATION_LOG"
#: Kubernetes keeps at most this much of the message.
TERMINATION_MESSAGE_MAX_BYTES: Final = 4096
#: The controller's containers fall back to the log tail when the program wrote no message.
TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"

# -- tuning progress -------------------------------------------------------------------------

#: The progress document's file under the output directory.
PROGRESS_FILE: Final = "progress.json"
PROGRESS_PHASES: Final = ("loading", "training", "saving", "completed", "failed")


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


@attrs.frozen
class TuningProgress:
    """The tuning progress document (``GET /progress`` and ``progress.json``): exactly these keys.

    ``phase`` is one of :data:`PROGRESS_PHASES`; ``step``/``max_steps`` count optimizer steps.
    """

    phase: str = "loading"
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    updated_at: str = ""
    message: str | None = None
    #: Training processes (ranks) the Job runs; rank 0 reports for all of them.
    processes: int = 1

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TuningProgress | None:
        """Read a document leniently (a field of the wrong type is left out); None without a
        string ``phase``."""
        phase = doc.get("phase")
        if not isinstance(phase, str):
            return None
        step, max_steps, epoch = doc.get("step"), doc.get("max_steps"), _number(doc.get("epoch"))
        updated_at, message = doc.get("updated_at"), doc.get("message")
        processes = doc.get("processes")
        return cls(
            phase=phase,
            step=step if isinstance(step, int) else 0,
            max_steps=max_steps if isinstance(max_steps, int) else 0,
            epoch=0.0 if epoch is None else float(epoch),
            loss=_number(doc.get("loss")),
            tokens_per_second=_number(doc.get("tokens_per_second")),
            eta_seconds=_number(doc.get("eta_seconds")),
            updated_at=updated_at if isinstance(updated_at, str) else "",
            message=message if isinstance(message, str) else None,
            processes=processes if isinstance(processes, int) and processes > 0 else 1,
        )


# -- default parameter ConfigMaps ------------------------------------------------------------

#: ``inference-params-template``'s ``inference_config.yaml`` (upstream's defaults).
INFERENCE_PARAMS: Final = """\
# Maximum number of steps to find the max available seq len fitting in the GPU memory.
max_probe_steps: 6
# Share of CPU memory the KV cache may offload to (0 disables the offload).
kv_cache_cpu_memory_utilization: 0.5
vllm:
  cpu-offload-gb: 0
  # gpu-memory-utilization: 0.9
  # max-seq-len-to-capture: 8192
  # num-scheduler-steps: 1
  # enable-chunked-prefill: false
  # max-model-len: 2048
  # Every key here becomes a vLLM engine flag: `key: value` -> `--key value`.
"""

_TUNING_COMMON_HEAD: Final = """\
training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
"""

_TUNING_COMMON_TAIL: Final = f"""\
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "{RESULTS_DIR}"
    ddp_find_unused_parameters: false
    save_strategy: "no"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"""

#: ``lora-params-template``'s ``training_config.yaml`` (upstream's defaults).
LORA_PARAMS: Final = (
    _TUNING_COMMON_HEAD
    + """\
  QuantizationConfig:
    load_in_4bit: false
"""
    + _TUNING_COMMON_TAIL
)

#: ``qlora-params-template``'s ``training_config.yaml`` (upstream's defaults).
QLORA_PARAMS: Final = (
    _TUNING_COMMON_HEAD
    + """\
  QuantizationConfig:
    load_in_4bit: true
    bnb_4bit_quant_type: "nf4"
    bnb_4bit_compute_dtype: "bfloat16"
    bnb_4bit_use_double_quant: true
"""
    + _TUNING_COMMON_TAIL
)
