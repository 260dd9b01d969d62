"""LoRA target names against the model, and the GPU fit estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaito_runtime.tuning import ConfigError, ResourceError
from kaito_runtime.tuning._config import PHI3_TARGET_MODULES
from kaito_runtime.tuning._memory import check_fits, estimate_footprint
from kaito_runtime.tuning._targets import resolve_target_modules

PHI3 = [
    f"model.layers.{i}.{m}"
    for i in range(2)
    for m in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
] + ["lm_head"]
LLAMA = [
    f"model.layers.0.{m}"
    for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
]


def test_upstream_phi3_defaults_map_onto_fused_projections() -> None:
    assert resolve_target_modules(list(PHI3_TARGET_MODULES), PHI3) == [
        "qkv_proj",
        "o_proj",
        "gate_up_proj",
        "down_proj",
    ]


def test_existing_names_pass_and_strings_are_left_to_peft() -> None:
    assert resolve_target_modules(["q_proj", "v_proj"], LLAMA) == ["q_proj", "v_proj"]
    assert resolve_target_modules("all-linear", LLAMA) == "all-linear"
    assert resolve_target_modules(None, LLAMA) is None


def test_unknown_names_list_the_models_linear_layers() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_target_modules(["q_proj", "dense_h_to_4h"], LLAMA)
    assert "names dense_h_to_4h, which the model does not have" in str(err.value)
    assert "its linear layers are: k_proj, o_proj, q_proj, v_proj" in str(err.value)


def _fake_model(directory: Path, *, params: int, dtype: str) -> Path:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"torch_dtype": dtype}))
    bytes_per = {"bfloat16": 2, "float32": 4}[dtype]
    with (directory / "model.safetensors").open("wb") as fh:
        fh.truncate(params * bytes_per)  # sparse: the size is what counts
    return directory


def test_a_model_too_big_for_the_gpu_is_refused_with_both_sizes(tmp_path: Path) -> None:
    model = _fake_model(tmp_path / "m", params=7_000_000_000, dtype="bfloat16")
    lora = estimate_footprint(model, torch_dtype="bfloat16", load_in_4bit=False, load_in_8bit=False)
    assert lora is not None
    assert lora.parameters == 7_000_000_000
    check_fits(lora, model="mistral-7b", method="lora", gpu_name="A10", gpu_bytes=24 << 30)
    with pytest.raises(ResourceError) as err:
        check_fits(lora, model="mistral-7b", method="lora", gpu_name="Tesla T4", gpu_bytes=12 << 30)
    message = str(err.value)
    assert "the model 'mistral-7b' (7.00B parameters at bfloat16) needs about 15.6 GiB" in message
    assert "but the GPU (Tesla T4) has 12.0 GiB; use tuning method qlora" in message
    assert err.value.exit_code == 4
    qlora = estimate_footprint(model, torch_dtype="bfloat16", load_in_4bit=True, load_in_8bit=False)
    assert qlora is not None
    assert qlora.load_precision == "4-bit"
    check_fits(qlora, model="mistral-7b", method="qlora", gpu_name="Tesla T4", gpu_bytes=12 << 30)
    with pytest.raises(ResourceError) as err:
        check_fits(qlora, model="mistral-7b", method="qlora", gpu_name="M60", gpu_bytes=2 << 30)
    assert "use tuning method qlora" not in str(err.value)
    assert "use an instance type with more GPU memory" in str(err.value)


def test_hub_ids_are_not_estimated(tmp_path: Path) -> None:
    assert (
        estimate_footprint(
            tmp_path / "microsoft/phi-3", torch_dtype=None, load_in_4bit=False, load_in_8bit=False
        )
        is None
    )
