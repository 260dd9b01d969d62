"""The tuning ConfigMap (``training_config.yaml``): sections, keys, defaults, validation.

Runtime layer (tuning Job). The file has upstream's shape, a ``training_config`` root with the
sections ``ModelConfig``, ``QuantizationConfig``, ``LoraConfig``, ``TrainingArguments``,
``DataCollator`` and ``DatasetConfig``, and upstream's defaults for keys left out. The four small
sections are typed and strict (an unknown key or a wrong type names the key, the value and the
fix); ``LoraConfig`` and ``TrainingArguments`` pass through to PEFT's ``LoraConfig`` and TRL's
``SFTConfig`` (a ``TrainingArguments``), whose fields are checked when training starts.
Importing this module does not import torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import yaml
from cattrs.errors import ForbiddenExtraKeysError

from kaito_runtime.contract import (
    DEFAULT_TARGET_MODULES_ENV,
    LORA_PARAMS,
    PHI3_TARGET_MODULES,
    QLORA_PARAMS,
    TUNING_CONFIG_FILE,
)
from kaito_runtime.tuning._termination import ConfigError

__all__ = (
    "LORA_TEMPLATE",
    "PHI3_TARGET_MODULES",
    "QLORA_TEMPLATE",
    "SECTIONS",
    "DataCollatorSection",
    "DatasetSection",
    "Method",
    "ModelSection",
    "QuantizationSection",
    "TuningConfig",
    "check_method",
    "default_target_modules",
    "load_config",
    "parse_config",
    "template_for",
)

Method = Literal["lora", "qlora"]
SECTIONS = (
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DataCollator",
    "DatasetConfig",
)
DTYPES = ("auto", "float32", "float16", "bfloat16", "float", "half")
FIX = f"fix it in the tuning ConfigMap (key {TUNING_CONFIG_FILE})"

# Upstream's default ConfigMaps (lora-params-template, qlora-params-template).
LORA_TEMPLATE = LORA_PARAMS
QLORA_TEMPLATE = QLORA_PARAMS


class _InvalidValue(ValueError):
    """A strict hook's refusal; its text names the value and what was expected."""


def _dtype(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value.removeprefix("torch.") not in DTYPES:
        raise _InvalidValue(
            f"{attribute.name}={value!r} is not a dtype; use one of {', '.join(DTYPES)}"
        )


@attrs.frozen
class ModelSection:
    """``ModelConfig``: how the base model and tokenizer are loaded (upstream's keys)."""

    pretrained_model_name_or_path: str | None = None
    torch_dtype: str | None = attrs.field(default=None, validator=_dtype)
    device_map: str | None = "auto"
    local_files_only: bool = False
    revision: str = "main"
    trust_remote_code: bool = False
    cache_dir: str | None = None
    chat_template: str | None = None
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    force_download: bool = False
    resume_download: bool = False
    from_tf: bool = False
    output_loading_info: bool = False
    proxies: str | None = None
    state_dict: dict[str, Any] | None = None


@attrs.frozen
class QuantizationSection:
    """``QuantizationConfig``: bitsandbytes settings (QLoRA when 4-bit is on)."""

    quant_method: str = "bitsandbytes"
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    llm_int8_threshold: float = 6.0
    llm_int8_skip_modules: list[str] | None = None
    llm_int8_enable_fp32_cpu_offload: bool = False
    llm_int8_has_fp16_weight: bool = False
    bnb_4bit_compute_dtype: str = attrs.field(default="float32", validator=_dtype)
    bnb_4bit_quant_type: str = "fp4"
    bnb_4bit_use_double_quant: bool = False
    bnb_4bit_quant_storage: str | None = None

    @property
    def quantized(self) -> bool:
        """Whether the base model is loaded quantized (4- or 8-bit)."""
        return self.load_in_4bit or self.load_in_8bit


@attrs.frozen
class DataCollatorSection:
    """``DataCollator``: upstream's ``DataCollatorForLanguageModeling`` keys.

    Causal-LM tuning never masks tokens, so ``mlm: true`` falls back to ``false`` as upstream
    does for tokenizers without a mask token.
    """

    mlm: bool = True
    mlm_probability: float = 0.15
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"


@attrs.frozen
class DatasetSection:
    """``DatasetConfig``: where the dataset is, its columns, and the train/eval split."""

    dataset_path: str | None = None
    dataset_extension: str | None = None
    shuffle_dataset: bool = True
    shuffle_seed: int = 42
    context_column: str | None = None
    response_column: str = "text"
    messages_column: str | None = None
    train_test_split: float = 0.8

    def __attrs_post_init__(self) -> None:
        if not 0 < self.train_test_split <= 1:
            raise _InvalidValue(
                f"train_test_split={self.train_test_split} must be in (0, 1]; "
                "use e.g. 0.8 for an 80/20 train/eval split, or 1 for no evaluation"
            )


@attrs.frozen
class TuningConfig:
    """The parsed ``training_config``; ``lora`` and ``training`` are passed through."""

    model: ModelSection = ModelSection()
    quantization: QuantizationSection = QuantizationSection()
    lora: dict[str, Any] = attrs.field(factory=dict)
    training: dict[str, Any] = attrs.field(factory=dict)
    collator: DataCollatorSection = DataCollatorSection()
    dataset: DatasetSection = DatasetSection()

    @property
    def method(self) -> Method:
        """``qlora`` when the model is loaded quantized, else ``lora``."""
        return "qlora" if self.quantization.quantized else "lora"


def _strict_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise _InvalidValue(f"{value!r} is not true or false")
    return value


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidValue(f"{value!r} is not an integer")
    return value


def _strict_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidValue(f"{value!r} is not a number")
    return float(value)


def _strict_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _InvalidValue(f"{value!r} is not a string")
    return value


def _names(value: object, _: type) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _InvalidValue(f"{value!r} is not a list of names")


def _mapping(value: object, _: type) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return dict(value)
    raise _InvalidValue(f"{value!r} is not a mapping")


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(list[str] | None, _names)
    converter.register_structure_hook(dict[str, Any] | None, _mapping)
    return converter


_CONVERTER = _converter()


def _format(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        valid = ", ".join(f.name for f in attrs.fields(exc.cl))
        return f"has unknown keys {', '.join(sorted(exc.extra_fields))} (valid keys: {valid})"
    if isinstance(exc, _InvalidValue):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _structure(section: str, data: object, cls: type[Any]) -> Any:
    path = f"training_config.{section}"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is {data!r}, not a mapping of keys to values; {FIX}")
    try:
        return _CONVERTER.structure(data, cls)
    except _InvalidValue as exc:
        raise ConfigError(f"{path}: {exc}; {FIX}") from None
    except cattrs.BaseValidationError as exc:
        problems = cattrs.transform_error(exc, path=path, format_exception=_format)
        rendered = "; ".join(_reorder(p) for p in problems)
        raise ConfigError(f"{rendered}; {FIX}") from None


def _reorder(problem: str) -> str:
    """Turn cattrs' ``message @ path`` into ``path: message``."""
    message, _, where = problem.rpartition(" @ ")
    return f"{where}: {message}" if message else problem


def _passthrough(section: str, data: object) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"training_config.{section} is {data!r}, not a mapping of keys to values; {FIX}"
        )
    return dict(data)


def default_target_modules(preset: str | None = None) -> list[str] | None:
    """Return the LoRA targets used when ``LoraConfig.target_modules`` is absent.

    ``$DEFAULT_TARGET_MODULES`` (comma-separated, set by the controller as upstream does for
    Phi-3 presets) wins; a ``phi-3*`` preset without it gets upstream's Phi-3 list; else None
    (PEFT's default for the architecture).
    """
    raw = os.environ.get(DEFAULT_TARGET_MODULES_ENV, "")
    names = [m.strip() for m in raw.split(",") if m.strip()]
    if names:
        return names
    if preset is not None and preset.lower().startswith("phi-3"):
        return list(PHI3_TARGET_MODULES)
    return None


def parse_config(
    text: str,
    *,
    source: str = TUNING_CONFIG_FILE,
    target_modules: list[str] | None = None,
) -> TuningConfig:
    """Parse the YAML text of a tuning ConfigMap; raise ConfigError naming what is wrong.

    ``target_modules`` fills ``LoraConfig.target_modules`` when the file leaves it out (see
    :func:`default_target_modules`).
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML ({exc}); {FIX}") from None
    if not isinstance(document, dict) or "training_config" not in document:
        raise ConfigError(f"{source} has no 'training_config:' root; {FIX}")
    root = document["training_config"] or {}
    if not isinstance(root, dict):
        raise ConfigError(f"training_config is {root!r}, not a mapping of sections; {FIX}")
    unknown = sorted(set(root) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"training_config has unknown sections {', '.join(map(str, unknown))}; "
            f"valid sections: {', '.join(SECTIONS)}; {FIX}"
        )
    model: ModelSection = _structure("ModelConfig", root.get("ModelConfig"), ModelSection)
    quantization: QuantizationSection = _structure(
        "QuantizationConfig", root.get("QuantizationConfig"), QuantizationSection
    )
    if model.load_in_4bit or model.load_in_8bit:
        # Upstream's ModelConfig also carried these; they mean the same as in QuantizationConfig.
        quantization = attrs.evolve(
            quantization,
            load_in_4bit=quantization.load_in_4bit or model.load_in_4bit,
            load_in_8bit=quantization.load_in_8bit or model.load_in_8bit,
        )
    if quantization.load_in_4bit and quantization.load_in_8bit:
        raise ConfigError(
            "training_config.QuantizationConfig sets both load_in_4bit and load_in_8bit; "
            f"choose one; {FIX}"
        )
    if quantization.bnb_4bit_quant_type not in ("nf4", "fp4"):
        raise ConfigError(
            "training_config.QuantizationConfig.bnb_4bit_quant_type="
            f"{quantization.bnb_4bit_quant_type!r} is not supported; use nf4 or fp4; {FIX}"
        )
    lora = _passthrough("LoraConfig", root.get("LoraConfig"))
    if lora.get("target_modules") is None and target_modules:
        lora["target_modules"] = list(target_modules)
    training = _passthrough("TrainingArguments", root.get("TrainingArguments"))
    collator: DataCollatorSection = _structure(
        "DataCollator", root.get("DataCollator"), DataCollatorSection
    )
    dataset: DatasetSection = _structure("DatasetConfig", root.get("DatasetConfig"), DatasetSection)
    return TuningConfig(
        model=model,
        quantization=quantization,
        lora=lora,
        training=training,
        collator=collator,
        dataset=dataset,
    )


def template_for(method: Method) -> str:
    """Return upstream's default ConfigMap text for ``method``."""
    return QLORA_TEMPLATE if method == "qlora" else LORA_TEMPLATE


def check_method(config: TuningConfig, method: Method) -> None:
    """Raise ConfigError if the config contradicts ``method`` (as the admission webhook does)."""
    if method == "lora" and config.quantization.quantized:
        raise ConfigError(
            "tuning method lora must not quantize the model, but "
            "training_config.QuantizationConfig loads it in 4/8 bit; use method qlora, or set "
            f"load_in_4bit: false; {FIX}"
        )
    if method == "qlora" and not config.quantization.quantized:
        raise ConfigError(
            "tuning method qlora needs training_config.QuantizationConfig.load_in_4bit: true "
            f"(or load_in_8bit); {FIX}"
        )


def load_config(
    path: Path | None,
    method: Method | None = None,
    *,
    target_modules: list[str] | None = None,
) -> TuningConfig:
    """Read the config at ``path`` (or upstream's template for ``method`` when ``path`` is None).

    When ``method`` is given it must agree with the file; see :func:`check_method`.
    """
    if path is None:
        config = parse_config(
            template_for(method or "lora"),
            source="built-in template",
            target_modules=target_modules,
        )
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the tuning config {str(path)!r}: {exc.strerror}; mount the "
                "ConfigMap there or pass --config FILE"
            ) from None
        config = parse_config(text, source=str(path), target_modules=target_modules)
    if method is not None:
        check_method(config, method)
    return config
