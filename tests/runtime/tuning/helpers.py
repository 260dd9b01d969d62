"""Test data for tuning runs: a small conversational dataset and ConfigMap text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ("chat_rows", "write_config", "write_parquet")


def chat_rows(n: int = 48) -> list[dict[str, Any]]:
    """Conversational rows in the OpenAI ``messages`` shape (as the guide's dolly dataset)."""
    return [
        {
            "messages": [
                {"role": "system", "content": "you answer questions about kaito"},
                {"role": "user", "content": f"what does the operator do number {i}"},
                {"role": "assistant", "content": f"the operator reconciles workspaces {i} quickly"},
            ]
        }
        for i in range(n)
    ]


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as one parquet file (through ``datasets``, as a user's export would be)."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


TINY_TARGETS = ("qkv_proj", "o_proj")


def write_config(
    path: Path,
    *,
    method: str = "lora",
    target_modules: Sequence[str] | None = TINY_TARGETS,
    **training: Any,
) -> Path:
    """Write a tuning ConfigMap for a tiny CPU run; ``training`` overrides TrainingArguments.

    ``target_modules=None`` leaves the key out (the preset's or PEFT's default applies).
    """
    quantization: dict[str, Any] = {"load_in_4bit": False}
    if method == "qlora":
        quantization = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": "float32",
            "bnb_4bit_use_double_quant": True,
        }
    arguments: dict[str, Any] = {
        "max_steps": 4,
        "per_device_train_batch_size": 4,
        "learning_rate": 0.002,
        "max_length": 64,
        "seed": 7,
    }
    arguments.update(training)
    lora: dict[str, Any] = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
    if target_modules is not None:
        lora["target_modules"] = list(target_modules)
    document = {
        "training_config": {
            "ModelConfig": {"torch_dtype": "float32", "local_files_only": True},
            "QuantizationConfig": quantization,
            "LoraConfig": lora,
            "TrainingArguments": arguments,
            "DataCollator": {"mlm": True},
            "DatasetConfig": {"shuffle_dataset": True, "train_test_split": 1},
        }
    }
    path.write_text(yaml.safe_dump(document))
    return path
