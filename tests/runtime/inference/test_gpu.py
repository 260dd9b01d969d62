"""The transformers backend on a CUDA GPU (``pytest -m gpu``): strength on logits, on the GPU.

The engine loads the model with ``device_map="auto"``; the oracles run on the same GPU.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kaito_runtime.inference import InferenceSettings, discover_adapters

pytestmark = [pytest.mark.gpu, pytest.mark.anyio]


@pytest.fixture(scope="module")
def cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


@pytest.fixture(scope="module")
async def gpu_engine(
    cuda: None, tiny_model: Path, lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Any]:
    from kaito_runtime.inference.backends import open_transformers_engine

    root = tmp_path_factory.mktemp("gpu-adapters")
    for name in ("zero", "full"):
        shutil.copytree(lora_adapter, root / name)
    settings = InferenceSettings(
        model=str(tiny_model),
        served_model_name="tiny",
        backend="transformers",
        dtype="float32",
        adapters=discover_adapters(root, environ={"zero": "0", "full": "1"}),
    )
    async with open_transformers_engine(settings) as engine:
        assert engine.model.device.type == "cuda"
        yield engine


def _gpu_logits(model: Any, ids: list[int]) -> Any:
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids], device="cuda")).logits[0].float().cpu()


async def test_strengths_on_the_gpu(gpu_engine: Any, tiny_model: Path, lora_adapter: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = gpu_engine.encode("the adapter serves tokens number 42 quickly")
    base = AutoModelForCausalLM.from_pretrained(tiny_model).to("cuda").eval()
    expected_base = _gpu_logits(base, ids)
    peft_model = PeftModel.from_pretrained(base, str(lora_adapter)).eval()
    expected_adapter = _gpu_logits(peft_model, ids)

    assert torch.equal(gpu_engine.logits(ids, "zero"), expected_base)
    assert torch.allclose(gpu_engine.logits(ids, "full"), expected_adapter, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(expected_base, expected_adapter, atol=1e-3)


async def test_generation_streams_on_the_gpu(gpu_engine: Any) -> None:
    """The path every HTTP request takes (stopping criteria included) works with CUDA tensors."""
    from kaito_runtime.inference import GenerationRequest, SamplingOptions

    ids = tuple(gpu_engine.encode("the model serves requests"))
    for adapter in (None, "full"):
        request = GenerationRequest(
            "gpu-1", ids, SamplingOptions(max_tokens=8, temperature=0), adapter=adapter
        )
        deltas = [d async for d in gpu_engine.generate(request)]
        assert sum(d.token_count for d in deltas) == 8
        assert deltas[-1].finish_reason == "length"
