"""Does preset P fit instance type T with N nodes? The answer, and the reason when it does not.

API layer (pure functions). Two rules, as upstream applies them:

- the admission check (transformers runtime, or bring-your-own nodes): ``N x node GPU memory`` must
  cover the preset's GPU memory requirement, each GPU must hold its share, and the transformers
  runtime cannot span nodes;
- the vLLM node estimator: how many nodes of type T the model needs, given the KV cache for the
  configured context length; a model that needs several nodes must support distributed inference.
"""

from __future__ import annotations

import math
from typing import Final, Literal

import attrs

from kaito.catalog._presets import Preset
from kaito.catalog._skus import SKU

__all__ = (
    "DEFAULT_MAX_MODEL_LEN",
    "Fit",
    "check_fit",
    "estimate_node_count",
    "gpu_memory_utilization",
)

DEFAULT_MAX_MODEL_LEN: Final = 2048
_RESERVE_GIB: Final = 2.3
_OVERHEAD: Final = 1.05
_WEIGHT_MARGIN: Final = 1.02
_GIB: Final = 1024**3

Runtime = Literal["vllm", "transformers"]


@attrs.frozen
class Fit:
    """The answer: ``ok``, and a sentence saying why not (or what was checked)."""

    ok: bool
    reason: str
    required_gib: float = 0.0
    available_gib: float = 0.0
    #: Nodes the vLLM estimator asks for (vLLM runtime only).
    nodes: int | None = None

    def __bool__(self) -> bool:
        return self.ok


def gpu_memory_utilization(sku: SKU) -> float:
    """The share of GPU memory vLLM may use: 0.84, or 0.82 on the 24 GiB NVIDIA A10 (upstream
    keys the override by the exact GPU model, so AWS's A10G keeps 0.84)."""
    return 0.82 if sku.gpu_model == "NVIDIA A10" else 0.84


def _fmt(gib: float) -> str:
    return f"{gib:g}Gi"


def estimate_node_count(
    preset: Preset, sku: SKU, *, max_model_len: int = DEFAULT_MAX_MODEL_LEN
) -> int | None:
    """Nodes of ``sku`` the vLLM runtime needs for ``preset``; None when no count can fit.

    Per GPU: usable = (memory x utilisation - 2.3 GiB - KV cache share) / 1.05; GPUs needed =
    floor(model size x 1.02 / usable) + 1; nodes = ceil(GPUs / GPUs per node).
    """
    size = preset.model_size if preset.model_size is not None else preset.total_gpu_memory
    bytes_per_token = preset.kv_bytes_per_token or 0
    available = sku.per_gpu_memory * gpu_memory_utilization(sku)
    kv_share = max_model_len * bytes_per_token / sku.gpu_count / _GIB
    usable = (available - _RESERVE_GIB - kv_share) / _OVERHEAD
    if usable <= 0:
        return None
    gpus = math.floor(size * _WEIGHT_MARGIN / usable) + 1
    return math.ceil(gpus / sku.gpu_count)


def check_fit(
    preset: Preset,
    sku: SKU,
    count: int = 1,
    *,
    runtime: Runtime = "vllm",
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
) -> Fit:
    """Answer whether ``count`` nodes of ``sku`` can serve ``preset`` with ``runtime``."""
    if runtime == "vllm":
        return _check_vllm(preset, sku, max_model_len)
    return _check_memory(preset, sku, count)


def _check_memory(preset: Preset, sku: SKU, count: int) -> Fit:
    available = count * sku.gpu_memory
    required = preset.total_gpu_memory
    if available < required:
        return Fit(
            False,
            f"insufficient total GPU memory: {count} x {sku.name} has {_fmt(available)}, "
            f"but preset {preset.name} requires at least {_fmt(required)}",
            required,
            available,
        )
    if preset.per_gpu_memory > sku.per_gpu_memory:
        return Fit(
            False,
            f"insufficient GPU memory per GPU: {sku.name} has {_fmt(sku.per_gpu_memory)} per GPU, "
            f"but preset {preset.name} requires {_fmt(preset.per_gpu_memory)} per GPU",
            required,
            available,
        )
    if preset.gpu_count > count * sku.gpu_count:
        return Fit(
            False,
            f"insufficient GPUs: {count} x {sku.name} has {count * sku.gpu_count} GPUs, "
            f"but preset {preset.name} requires {preset.gpu_count}",
            required,
            available,
        )
    if required > sku.gpu_memory:
        return Fit(
            False,
            f"preset {preset.name} needs {_fmt(required)} of GPU memory but one {sku.name} node "
            f"has {_fmt(sku.gpu_memory)}, and the transformers runtime cannot span nodes",
            required,
            available,
        )
    return Fit(
        True,
        f"{count} x {sku.name} has {_fmt(available)} of GPU memory; "
        f"preset {preset.name} requires {_fmt(required)}",
        required,
        available,
    )


def _check_vllm(preset: Preset, sku: SKU, max_model_len: int) -> Fit:
    size = preset.model_size if preset.model_size is not None else preset.total_gpu_memory
    nodes = estimate_node_count(preset, sku, max_model_len=max_model_len)
    if nodes is None:
        return Fit(
            False,
            f"one {sku.gpu_model} GPU of {sku.name} ({_fmt(sku.per_gpu_memory)}) leaves no room "
            f"for the weights of {preset.name} after the KV cache for {max_model_len} tokens",
            size,
            sku.gpu_memory,
        )
    if nodes > 1 and not preset.distributed:
        return Fit(
            False,
            f"preset {preset.name} ({_fmt(size)}) needs {nodes} {sku.name} nodes with vLLM, "
            "but it does not support multi-node inference",
            size,
            sku.gpu_memory,
            nodes,
        )
    return Fit(
        True,
        f"vLLM estimator: {nodes} x {sku.name} for {preset.name} ({_fmt(size)}, "
        f"max-model-len {max_model_len})",
        size,
        nodes * sku.gpu_memory,
        nodes,
    )
