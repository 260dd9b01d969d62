"""Runtime fixtures: one tiny random-weight model and LoRA adapters per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_model import build_tiny_model, make_lora_adapter


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved Phi-3-architecture model (2 layers, head size 64) with its tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def lora_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEFT LoRA adapter for ``tiny_model`` with non-zero B (it changes the logits)."""
    return make_lora_adapter(tiny_model, tmp_path_factory.mktemp("adapter") / "adapter", seed=1)


@pytest.fixture(scope="session")
def second_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another adapter for ``tiny_model``, with different weights."""
    return make_lora_adapter(tiny_model, tmp_path_factory.mktemp("adapter2") / "adapter", seed=2)
