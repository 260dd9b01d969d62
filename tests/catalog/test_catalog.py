"""The preset and SKU catalogs, and the fit answer with its reason."""

from __future__ import annotations

import pytest

from kaito.catalog import (
    check_fit,
    disk_requirement,
    estimate_node_count,
    preset_catalog,
    sku_catalog,
)

PRESETS = preset_catalog()
SKUS = sku_catalog()


def test_every_reference_preset_is_present() -> None:
    names = set(PRESETS.names(include_deprecated=True))
    assert {
        "falcon-7b", "falcon-7b-instruct", "falcon-40b", "falcon-40b-instruct", "mistral-7b",
        "mistral-7b-instruct", "phi-2", "phi-3-mini-4k-instruct", "phi-3-mini-128k-instruct",
        "phi-3-medium-4k-instruct", "phi-3-medium-128k-instruct", "phi-3.5-mini-instruct",
        "phi-4", "phi-4-mini-instruct", "qwen2.5-coder-7b-instruct", "qwen2.5-coder-32b-instruct",
        "deepseek-r1-distill-llama-8b", "deepseek-r1-distill-qwen-14b", "deepseek-r1-0528",
        "deepseek-v3-0324", "llama-3.1-8b-instruct", "llama-3.3-70b-instruct",
        "gemma-3-4b-instruct", "gemma-3-27b-instruct", "gpt-oss-20b", "gpt-oss-120b",
        "ministral-3-3b-instruct", "ministral-3-8b-instruct", "ministral-3-14b-instruct",
        "mistral-large-3-675b-instruct",
    } <= names  # fmt: skip


def test_presets_are_found_by_hugging_face_id_case_insensitively() -> None:
    preset = PRESETS.get("microsoft/phi-3-mini-4k-instruct")
    assert preset is not None
    assert preset.name == "phi-3-mini-4k-instruct"
    assert preset.total_gpu_memory == 9
    assert preset.tuning


@pytest.mark.parametrize(
    ("sku", "gpus", "memory"),
    [
        ("Standard_NC6s_v3", 1, 16),
        ("Standard_NC24ads_A100_v4", 1, 80),
        ("Standard_ND96isr_H200_v5", 8, 1128),
        ("p5.48xlarge", 8, 640),
        ("g5.12xlarge", 4, 96),
    ],
)
def test_sku_catalog(sku: str, gpus: int, memory: float) -> None:
    found = SKUS.get(sku)
    assert found is not None
    assert (found.gpu_count, found.gpu_memory) == (gpus, memory)


def test_disk_rule() -> None:
    assert disk_requirement(7.12) == 87  # upstream v0.12: weights + 80 GiB
    assert disk_requirement(25.63) == 105


def test_the_guide_fits_its_instance_type() -> None:
    preset = PRESETS.get("phi-3-mini-4k-instruct")
    sku = SKUS.get("Standard_NC6s_v3")
    assert preset and sku
    assert check_fit(preset, sku, 1, runtime="transformers").ok
    assert check_fit(preset, sku, 1, runtime="vllm").nodes == 1


def test_too_small_says_why() -> None:
    preset = PRESETS.get("phi-4")
    sku = SKUS.get("Standard_NV36ads_A10_v5")
    assert preset and sku
    fit = check_fit(preset, sku, 1, runtime="transformers")
    assert not fit
    assert fit.reason == (
        "insufficient total GPU memory: 1 x Standard_NV36ads_A10_v5 has 24Gi, "
        "but preset phi-4 requires at least 40Gi"
    )


def test_per_gpu_memory_is_checked() -> None:
    preset = PRESETS.get("llama-3.3-70b-instruct")
    sku = SKUS.get("Standard_ND96asr_A100_v4")  # 8 x 40Gi
    assert preset and sku
    fit = check_fit(preset, sku, 1, runtime="transformers")
    assert not fit
    assert "per GPU" in fit.reason


def test_estimator_spreads_large_models_over_nodes() -> None:
    preset = PRESETS.get("llama-3.3-70b-instruct")
    small = SKUS.get("Standard_NC24ads_A100_v4")
    big = SKUS.get("Standard_NC96ads_A100_v4")
    assert preset and small and big
    assert estimate_node_count(preset, big) == 1
    assert estimate_node_count(preset, small) == 3
    assert check_fit(preset, small, runtime="vllm").ok  # distributed inference is supported


def test_longer_context_needs_more_memory() -> None:
    preset = PRESETS.get("phi-3-mini-128k-instruct")
    sku = SKUS.get("Standard_NC6s_v3")
    assert preset and sku
    assert estimate_node_count(preset, sku, max_model_len=2048) == 1
    fit = check_fit(preset, sku, runtime="vllm", max_model_len=131072)
    assert not fit
    assert "KV cache" in fit.reason
