"""Will the base model fit the GPU? A check before the slow load, and the OOM translation.

Runtime layer (tuning Job). The estimate counts the weights at the precision they will be loaded
in (4-bit for QLoRA, 8-bit, or ``torch_dtype``) plus a margin for the LoRA weights, optimizer
state and activations; a model clearly too big for the GPU fails at once with a message that
names both sizes and the fixes, instead of minutes later with ``CUDA out of memory``.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from kaito_runtime.tuning._termination import ResourceError

__all__ = ("TRAINING_MARGIN", "ModelFootprint", "check_fits", "estimate_footprint", "oom_error")

GiB = 1024**3
# Weights are most of the memory in LoRA tuning; the rest (adapter, optimizer state, activations
# at small batch sizes, CUDA context) is budgeted as a fraction of them.
TRAINING_MARGIN = 1.2
_BYTES_PER_PARAM = {
    "float32": 4.0,
    "float": 4.0,
    "float16": 2.0,
    "half": 2.0,
    "bfloat16": 2.0,
    "float64": 8.0,
}


@attrs.frozen
class ModelFootprint:
    """Parameters of the model and the bytes the tuning run needs for them."""

    parameters: int
    load_precision: str
    weight_bytes: int

    @property
    def required_bytes(self) -> int:
        """Weights plus the training margin."""
        return int(self.weight_bytes * TRAINING_MARGIN)


def _stored_dtype(model_dir: Path) -> str:
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return "bfloat16"
    dtype = config.get("torch_dtype") or config.get("dtype") or "bfloat16"
    return str(dtype).removeprefix("torch.")


def estimate_footprint(
    model_dir: Path, *, torch_dtype: str | None, load_in_4bit: bool, load_in_8bit: bool
) -> ModelFootprint | None:
    """Estimate from the checkpoint files in ``model_dir``; None if it is not a local model."""
    if not model_dir.is_dir():
        return None
    files = list(model_dir.glob("*.safetensors")) or list(model_dir.glob("*.bin"))
    if not files:
        return None
    stored = _stored_dtype(model_dir)
    parameters = int(sum(f.stat().st_size for f in files) / _BYTES_PER_PARAM.get(stored, 2.0))
    if load_in_4bit:
        precision, per_param = "4-bit", 0.5
    elif load_in_8bit:
        precision, per_param = "8-bit", 1.0
    else:
        precision = stored if torch_dtype in (None, "auto") else str(torch_dtype)
        per_param = _BYTES_PER_PARAM.get(precision.removeprefix("torch."), 2.0)
    return ModelFootprint(
        parameters=parameters, load_precision=precision, weight_bytes=int(parameters * per_param)
    )


def check_fits(
    footprint: ModelFootprint, *, model: str, method: str, gpu_name: str, gpu_bytes: int
) -> None:
    """Raise ResourceError if ``footprint`` clearly cannot fit ``gpu_bytes`` of GPU memory."""
    if footprint.required_bytes <= gpu_bytes:
        return
    fixes = "use an instance type with more GPU memory"
    if method != "qlora":
        fixes = "use tuning method qlora (4-bit weights), or " + fixes
    raise ResourceError(
        f"the model {model!r} ({footprint.parameters / 1e9:.2f}B parameters at "
        f"{footprint.load_precision}) needs about {footprint.required_bytes / GiB:.1f} GiB of GPU "
        f"memory to tune with {method}, but the GPU ({gpu_name}) has {gpu_bytes / GiB:.1f} GiB; "
        f"{fixes}"
    )


def oom_error(
    phase: str, *, gpu_name: str, gpu_bytes: int, batch_size: int, max_length: int | None
) -> ResourceError:
    """Translate a CUDA out-of-memory during ``phase`` into an actionable ResourceError."""
    return ResourceError(
        f"out of GPU memory while {phase} on {gpu_name} ({gpu_bytes / GiB:.1f} GiB): lower "
        f"TrainingArguments.per_device_train_batch_size (now {batch_size}) or max_length "
        f"(now {max_length}), enable gradient_checkpointing, use tuning method qlora, or use an "
        "instance type with more GPU memory"
    )
