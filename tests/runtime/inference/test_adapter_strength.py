"""Adapter strength on the transformers backend, checked on logits against PEFT itself.

Oracles are computed independently of the server's code: the plain base model, PEFT loading the
original adapter, and base weights plus ``w * delta`` where ``delta`` comes from PEFT's own
``merge_and_unload``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kaito_runtime.inference import InferenceSettings, discover_adapters
from kaito_runtime.inference.backends._transformers_engine import (
    TransformersEngine,
    open_transformers_engine,
)

pytestmark = pytest.mark.anyio

STRENGTHS = {"a-zero": "0", "a-full": "1.0", "a-half": "0.5", "b-part": "0.3"}


@pytest.fixture(scope="module")
def strength_dir(
    lora_adapter: Path, second_adapter: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root = tmp_path_factory.mktemp("strengths")
    for name in ("a-zero", "a-full", "a-half"):
        shutil.copytree(lora_adapter, root / name)
    shutil.copytree(second_adapter, root / "b-part")
    return root


@pytest.fixture(scope="module")
async def engine(tiny_model: Path, strength_dir: Path) -> AsyncIterator[TransformersEngine]:
    settings = InferenceSettings(
        model=str(tiny_model),
        served_model_name="tiny",
        backend="transformers",
        adapters=discover_adapters(strength_dir, environ=STRENGTHS),
    )
    async with open_transformers_engine(settings) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def prompt_ids(engine: TransformersEngine) -> list[int]:
    return engine.encode("the adapter serves tokens number 42 quickly and then answers")


def _base(tiny_model: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model).eval()


def _logits(model: Any, ids: list[int]) -> Any:
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def _delta(tiny_model: Path, adapter: Path) -> dict[str, Any]:
    from peft import PeftModel

    base_state = {k: v.clone() for k, v in _base(tiny_model).state_dict().items()}
    merged = PeftModel.from_pretrained(_base(tiny_model), str(adapter)).merge_and_unload()
    return {k: v - base_state[k] for k, v in merged.state_dict().items()}


def _weighted(tiny_model: Path, parts: list[tuple[float, dict[str, Any]]]) -> Any:
    model = _base(tiny_model)
    state = model.state_dict()
    for weight, delta in parts:
        for key, value in delta.items():
            state[key] += weight * value
    model.load_state_dict(state)
    return model


async def test_strength_zero_gives_exactly_the_base_logits(
    engine: TransformersEngine, tiny_model: Path, prompt_ids: list[int]
) -> None:
    import torch

    expected = _logits(_base(tiny_model), prompt_ids)
    assert torch.equal(engine.logits(prompt_ids, "a-zero"), expected)


async def test_strength_one_gives_the_adapters_logits(
    engine: TransformersEngine, tiny_model: Path, lora_adapter: Path, prompt_ids: list[int]
) -> None:
    import torch
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(_base(tiny_model), str(lora_adapter)).eval()
    expected = _logits(peft_model, prompt_ids)
    base = _logits(_base(tiny_model), prompt_ids)

    got = engine.logits(prompt_ids, "a-full")

    assert not torch.allclose(expected, base, atol=1e-3)  # the adapter matters
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


async def test_half_strength_adds_half_the_adapters_weight_delta(
    engine: TransformersEngine, tiny_model: Path, lora_adapter: Path, prompt_ids: list[int]
) -> None:
    import torch

    expected = _logits(_weighted(tiny_model, [(0.5, _delta(tiny_model, lora_adapter))]), prompt_ids)
    full = _logits(_weighted(tiny_model, [(1.0, _delta(tiny_model, lora_adapter))]), prompt_ids)

    got = engine.logits(prompt_ids, "a-half")

    assert not torch.allclose(expected, full, atol=1e-3)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


async def test_served_model_combines_every_adapter_by_its_strength(
    engine: TransformersEngine,
    tiny_model: Path,
    lora_adapter: Path,
    second_adapter: Path,
    prompt_ids: list[int],
) -> None:
    import torch

    delta_a = _delta(tiny_model, lora_adapter)
    delta_b = _delta(tiny_model, second_adapter)
    # a-zero adds nothing; a-full and a-half add 1.5 x delta_a; b-part adds 0.3 x delta_b.
    expected = _logits(_weighted(tiny_model, [(1.5, delta_a), (0.3, delta_b)]), prompt_ids)

    got = engine.logits(prompt_ids, None)

    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert engine.info.adapters == ("a-full", "a-half", "a-zero", "b-part")
