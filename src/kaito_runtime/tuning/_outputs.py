"""What a finished tuning run leaves in the output directory besides the adapter.

Runtime layer (tuning Job). ``kaito_tuning_metadata.json`` describes the run;
``fine_tuning_completed.txt`` is written last, because upstream's pusher waits for it before it
packages ``adapter_config.json`` and ``adapter_model.safetensors``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

__all__ = (
    "ADAPTER_FILES",
    "COMPLETION_FILE",
    "METADATA_FILE",
    "TuningMetadata",
    "write_completion",
    "write_metadata",
)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
METADATA_FILE = "kaito_tuning_metadata.json"
COMPLETION_FILE = "fine_tuning_completed.txt"


@attrs.frozen
class TuningMetadata:
    """A short record of the run; written as JSON next to the adapter."""

    base_model: str
    preset: str | None
    method: str
    steps: int
    epochs: float
    final_loss: float | None
    train_loss: float | None
    dataset_fingerprint: str
    dataset_files: list[str]
    dataset_rows: int
    dataset_format: str
    train_runtime_seconds: float
    train_tokens: int | None
    tokens_per_second: float | None
    resumed_from_step: int
    target_modules: list[str] | str | None
    device: str = "cpu"
    peak_gpu_memory_bytes: int | None = None
    processes: int = 1
    #: What the base model is when it is a stand-in (random weights): so is the adapter.
    base_model_stand_in: str | None = None
    finished_at: str = attrs.field(
        factory=lambda: datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document."""
        return attrs.asdict(self)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_metadata(output_dir: Path, metadata: TuningMetadata) -> Path:
    """Write ``kaito_tuning_metadata.json``; return its path."""
    path = output_dir / METADATA_FILE
    _atomic_write(path, json.dumps(metadata.to_json(), indent=2) + "\n")
    return path


def write_completion(output_dir: Path, summary: str) -> Path:
    """Write ``fine_tuning_completed.txt`` (the pusher's signal); return its path."""
    path = output_dir / COMPLETION_FILE
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S")
    _atomic_write(path, f"Fine-Tuning completed at {stamp}\n{summary}\n")
    return path
