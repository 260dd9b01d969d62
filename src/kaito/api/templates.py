"""The default parameter ConfigMaps KAITO installs in its release namespace.

API layer (pure data). Workspaces that leave ``inference.config`` or ``tuning.config`` empty use
these; validation checks user ConfigMaps against the same structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from kaito.api.constants import (
    DEFAULT_INFERENCE_CONFIG_TEMPLATE,
    DEFAULT_LORA_CONFIG_TEMPLATE,
    DEFAULT_QLORA_CONFIG_TEMPLATE,
    INFERENCE_CONFIG_KEY,
    TUNING_CONFIG_KEY,
)

__all__ = ("DEFAULT_RELEASE_NAMESPACE", "default_template", "default_templates")

DEFAULT_RELEASE_NAMESPACE: Final = "kaito-workspace"

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

_TUNING_COMMON_TAIL: Final = """\
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "no"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"""

LORA_PARAMS: Final = (
    _TUNING_COMMON_HEAD
    + """\
  QuantizationConfig:
    load_in_4bit: false
"""
    + _TUNING_COMMON_TAIL
)

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

_TEMPLATES: Final[Mapping[str, Mapping[str, str]]] = {
    DEFAULT_INFERENCE_CONFIG_TEMPLATE: {INFERENCE_CONFIG_KEY: INFERENCE_PARAMS},
    DEFAULT_LORA_CONFIG_TEMPLATE: {TUNING_CONFIG_KEY: LORA_PARAMS},
    DEFAULT_QLORA_CONFIG_TEMPLATE: {TUNING_CONFIG_KEY: QLORA_PARAMS},
}


def default_templates() -> Mapping[str, Mapping[str, str]]:
    """Name -> ConfigMap data of every default template."""
    return _TEMPLATES


def default_template(name: str) -> Mapping[str, str] | None:
    """The data of the default template called ``name``, or None."""
    return _TEMPLATES.get(name)
