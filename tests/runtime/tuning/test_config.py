"""The tuning ConfigMap: upstream's templates parse, defaults apply, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito_runtime.tuning import ConfigError
from kaito_runtime.tuning._config import (
    LORA_TEMPLATE,
    PHI3_TARGET_MODULES,
    QLORA_TEMPLATE,
    check_method,
    default_target_modules,
    load_config,
    parse_config,
)


def test_upstream_templates_parse_with_their_defaults() -> None:
    lora = parse_config(LORA_TEMPLATE)
    qlora = parse_config(QLORA_TEMPLATE)
    assert lora.method == "lora"
    assert qlora.method == "qlora"
    assert qlora.quantization.bnb_4bit_quant_type == "nf4"
    assert qlora.quantization.bnb_4bit_use_double_quant
    assert lora.model.torch_dtype == "bfloat16"
    assert lora.model.local_files_only
    assert lora.lora == {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0}
    assert lora.training["save_strategy"] == "no"
    assert lora.dataset.train_test_split == 1.0
    assert lora.collator.mlm


def test_missing_keys_take_upstream_code_defaults() -> None:
    config = parse_config("training_config:\n  LoraConfig: {r: 4}\n")
    assert config.dataset.response_column == "text"
    assert config.dataset.train_test_split == 0.8
    assert config.dataset.shuffle_seed == 42
    assert config.quantization.bnb_4bit_quant_type == "fp4"
    assert config.model.device_map == "auto"
    assert config.training == {}


def test_target_modules_default_from_the_environment_then_the_preset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEFAULT_TARGET_MODULES", raising=False)
    assert default_target_modules("phi-3-mini-128k-instruct") == list(PHI3_TARGET_MODULES)
    assert default_target_modules("mistral-7b") is None
    monkeypatch.setenv("DEFAULT_TARGET_MODULES", "k_proj, q_proj,v_proj")
    targets = default_target_modules("mistral-7b")
    assert targets == ["k_proj", "q_proj", "v_proj"]
    parsed = parse_config("training_config: {}\n", target_modules=targets)
    assert parsed.lora["target_modules"] == targets
    explicit = parse_config(
        "training_config:\n  LoraConfig: {target_modules: [o_proj]}\n", target_modules=targets
    )
    assert explicit.lora["target_modules"] == ["o_proj"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(
            "training_config:\n  Trainer: {}\n  Extra: {}\n",
            ["unknown sections Extra, Trainer", "valid sections: ModelConfig"],
            id="unknown-sections",
        ),
        pytest.param(
            "training_config:\n  DatasetConfig: {respons_column: a}\n",
            ["training_config.DatasetConfig: has unknown keys respons_column", "response_column"],
            id="typo-key",
        ),
        pytest.param(
            "training_config:\n  DatasetConfig: {shuffle_seed: 'x'}\n",
            ["training_config.DatasetConfig.shuffle_seed: 'x' is not an integer"],
            id="wrong-type",
        ),
        pytest.param(
            "training_config:\n  DataCollator: {mlm: 'yes'}\n",
            ["training_config.DataCollator.mlm: 'yes' is not true or false"],
            id="string-bool",
        ),
        pytest.param(
            "training_config:\n  DatasetConfig: {train_test_split: 0}\n",
            ["train_test_split=0.0 must be in (0, 1]"],
            id="split-range",
        ),
        pytest.param(
            "training_config:\n  ModelConfig: {torch_dtype: int4}\n",
            ["torch_dtype='int4' is not a dtype; use one of auto"],
            id="dtype",
        ),
        pytest.param(
            "training_config:\n  QuantizationConfig: {load_in_4bit: true, load_in_8bit: true}\n",
            ["sets both load_in_4bit and load_in_8bit"],
            id="both-bits",
        ),
        pytest.param(
            "training_config:\n  QuantizationConfig: {bnb_4bit_quant_type: int4}\n",
            ["bnb_4bit_quant_type='int4' is not supported; use nf4 or fp4"],
            id="quant-type",
        ),
        pytest.param(
            "training_config:\n  LoraConfig: [r, 8]\n",
            ["training_config.LoraConfig is ['r', 8], not a mapping"],
            id="section-not-mapping",
        ),
        pytest.param("tuning: {}\n", ["has no 'training_config:' root"], id="no-root"),
        pytest.param("training_config: [\n", ["is not valid YAML"], id="bad-yaml"),
    ],
)
def test_mistakes_name_the_key_the_value_and_the_fix(text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message
    assert message.endswith("fix it in the tuning ConfigMap (key training_config.yaml)")
    assert err.value.exit_code == 2


def test_the_method_must_agree_with_quantization() -> None:
    with pytest.raises(ConfigError, match="lora must not quantize"):
        check_method(parse_config(QLORA_TEMPLATE), "lora")
    with pytest.raises(ConfigError, match=r"qlora needs .*load_in_4bit: true"):
        check_method(parse_config(LORA_TEMPLATE), "qlora")


def test_load_config_reads_a_file_or_falls_back_to_the_template(tmp_path: Path) -> None:
    path = tmp_path / "training_config.yaml"
    path.write_text(QLORA_TEMPLATE)
    assert load_config(path).method == "qlora"
    assert load_config(None, "qlora").method == "qlora"
    assert load_config(None).method == "lora"
    with pytest.raises(ConfigError, match=r"cannot read the tuning config .*pass --config FILE"):
        load_config(tmp_path / "missing.yaml")
