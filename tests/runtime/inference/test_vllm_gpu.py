"""The vLLM tests again on a CUDA GPU with CUDA vLLM (``pytest -m "gpu and vllm"``).

Same tests as ``test_vllm_backend``, with a Phi-3-mini-sized random model (3.8B parameters) in
bfloat16; tolerances are those of bfloat16 kernels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.inference.test_vllm_backend import (  # re-collected here with GPU fixtures
    base_url,
    engine,
    env_for_vllm,
    test_fractional_strength_and_the_combination_match_merged_weights,
    test_legacy_chat_and_metrics_over_vllm,
    test_openai_client_chat_and_completions_over_vllm,
    test_strength_one_gives_the_adapters_logprobs,
    test_strength_zero_gives_the_base_models_logprobs,
    vllm_adapters,
    vllm_settings,
)

pytestmark = [pytest.mark.gpu, pytest.mark.vllm, pytest.mark.anyio]

__all__ = (
    "base_url",
    "engine",
    "env_for_vllm",
    "test_fractional_strength_and_the_combination_match_merged_weights",
    "test_legacy_chat_and_metrics_over_vllm",
    "test_openai_client_chat_and_completions_over_vllm",
    "test_strength_one_gives_the_adapters_logprobs",
    "test_strength_zero_gives_the_base_models_logprobs",
    "vllm_adapters",
    "vllm_settings",
)


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from tests.support.tiny_model import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("phi3-mini-size"),
        hidden_size=3072,
        num_heads=32,
        num_layers=32,
        intermediate_size=8192,
        max_positions=4096,
        dtype="bfloat16",
    )


@pytest.fixture(scope="module")
def vllm_dtype() -> str:
    return "bfloat16"


@pytest.fixture(scope="module")
def tolerance() -> float:
    return 0.15
