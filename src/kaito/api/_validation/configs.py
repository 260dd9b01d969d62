"""Checks of the parameter ConfigMaps a Workspace refers to (inference and tuning).

API layer (pure functions).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any, Final

from kaito.api._config_files import ConfigFileError, load_config_file
from kaito.api._errors import FieldError, forbidden, invalid, not_found, required
from kaito.api.constants import INFERENCE_CONFIG_KEY, TUNING_CONFIG_KEY
from kaito.catalog import Preset

__all__ = ("TUNING_SECTIONS", "validate_inference_config", "validate_tuning_config")

TUNING_SECTIONS: Final = (
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DatasetConfig",
    "DataCollator",
)
_RESULTS_BASE: Final = "/mnt"


def _load(text: str, *, where: str, cm: str) -> tuple[Any, FieldError | None]:
    try:
        return load_config_file(text), None
    except ConfigFileError as exc:
        detail = str(exc).replace("\n", " ")
        return None, invalid(where, cm, f"{detail}", fix="fix the YAML in the ConfigMap")


def validate_inference_config(
    data: Mapping[str, str] | None,
    *,
    field: str,
    cm_name: str,
    namespace: str,
    preset: Preset | None,
) -> list[FieldError]:
    """Check an inference ConfigMap: key inference_config.yaml, a vllm map, max-model-len."""
    if data is None:
        return [
            not_found(
                field,
                cm_name,
                f"ConfigMap not found in namespace {namespace!r}",
                fix=f"create the ConfigMap with key {INFERENCE_CONFIG_KEY!r}, or remove 'config' "
                "to use the default parameters",
            )
        ]
    if INFERENCE_CONFIG_KEY not in data:
        return [
            required(
                field,
                f"ConfigMap {cm_name!r} has no key {INFERENCE_CONFIG_KEY!r} "
                f"(keys: {', '.join(sorted(data)) or 'none'})",
                fix=f"put the inference parameters under {INFERENCE_CONFIG_KEY!r}",
            )
        ]
    config, err = _load(data[INFERENCE_CONFIG_KEY], where=field, cm=cm_name)
    if err is not None:
        return [err]
    if config is None:
        return []
    if not isinstance(config, dict):
        return [invalid(field, cm_name, f"{INFERENCE_CONFIG_KEY} must hold a YAML mapping")]
    errors: list[FieldError] = []
    vllm = config.get("vllm")
    if vllm is not None and not isinstance(vllm, dict):
        return [invalid(field, cm_name, "'vllm' must be a mapping of engine flags to values")]
    raw = (vllm or {}).get("max-model-len")
    if raw is not None and str(raw).strip():
        try:
            max_len = int(str(raw).strip())
        except ValueError:
            return [
                invalid(
                    f"{field}[vllm.max-model-len]",
                    raw,
                    "max-model-len must be an integer",
                    fix="write a number of tokens, e.g. 4096",
                )
            ]
        if max_len <= 0:
            errors.append(
                invalid(f"{field}[vllm.max-model-len]", max_len, "must be a positive integer")
            )
        elif preset is not None and preset.token_limit and max_len > preset.token_limit:
            errors.append(
                invalid(
                    f"{field}[vllm.max-model-len]",
                    max_len,
                    f"exceeds the context window of {preset.name} ({preset.token_limit} tokens)",
                    fix=f"use at most {preset.token_limit}",
                )
            )
    return errors


def validate_tuning_config(
    data: Mapping[str, str] | None,
    *,
    field: str,
    cm_name: str,
    namespace: str,
    method: str,
) -> list[FieldError]:
    """Check a tuning ConfigMap: sections, quantization against the method, output_dir."""
    if data is None:
        return [
            not_found(
                field,
                cm_name,
                f"ConfigMap not found in namespace {namespace!r}",
                fix=f"create the ConfigMap with key {TUNING_CONFIG_KEY!r}, or remove 'config' to "
                f"use the default {method} parameters",
            )
        ]
    if TUNING_CONFIG_KEY not in data:
        return [
            required(
                field,
                f"ConfigMap {cm_name!r} has no key {TUNING_CONFIG_KEY!r} "
                f"(keys: {', '.join(sorted(data)) or 'none'})",
                fix=f"put the training parameters under {TUNING_CONFIG_KEY!r}",
            )
        ]
    config, err = _load(data[TUNING_CONFIG_KEY], where=field, cm=cm_name)
    if err is not None:
        return [err]
    root = config.get("training_config") if isinstance(config, dict) else None
    if not isinstance(root, dict):
        return [
            invalid(
                field,
                cm_name,
                f"{TUNING_CONFIG_KEY} must have a 'training_config' mapping at its root",
                fix="nest the sections (ModelConfig, LoraConfig, ...) under training_config:",
            )
        ]
    errors: list[FieldError] = []
    for section in root:
        if section not in TUNING_SECTIONS:
            errors.append(
                invalid(
                    f"{field}[training_config.{section}]",
                    section,
                    "unrecognized section",
                    fix=f"use only: {', '.join(TUNING_SECTIONS)}",
                )
            )
    errors += _check_quantization(root.get("QuantizationConfig"), field, method)
    errors += _check_output_dir(root.get("TrainingArguments"), field)
    return errors


def _check_quantization(section: Any, field: str, method: str) -> list[FieldError]:
    where = f"{field}[training_config.QuantizationConfig]"
    quant = section if isinstance(section, dict) else {}
    if section is not None and not isinstance(section, dict):
        return [invalid(where, section, "must be a mapping")]
    flags = {}
    for key in ("load_in_4bit", "load_in_8bit"):
        value = quant.get(key)
        if value is not None and not isinstance(value, bool):
            return [invalid(f"{where}.{key}", value, "must be true or false")]
        flags[key] = bool(value)
    if flags["load_in_4bit"] and flags["load_in_8bit"]:
        return [forbidden(where, "load_in_4bit and load_in_8bit cannot both be true")]
    quantized = flags["load_in_4bit"] or flags["load_in_8bit"]
    if method == "lora" and quantized:
        return [
            forbidden(
                where,
                "method lora does not quantize the base model",
                fix="set load_in_4bit and load_in_8bit to false, or use method qlora",
            )
        ]
    if method == "qlora" and not quantized:
        return [
            required(
                where,
                "method qlora needs load_in_4bit or load_in_8bit set to true",
                fix="set load_in_4bit: true (with bnb_4bit_quant_type: nf4), or use method lora",
            )
        ]
    return []


def _check_output_dir(section: Any, field: str) -> list[FieldError]:
    if not isinstance(section, dict) or "output_dir" not in section:
        return []
    value = section["output_dir"]
    where = f"{field}[training_config.TrainingArguments.output_dir]"
    if not isinstance(value, str):
        return [invalid(where, value, "output_dir must be a string")]
    clean = posixpath.normpath(posixpath.join(_RESULTS_BASE, value))
    if clean == _RESULTS_BASE or not clean.startswith(_RESULTS_BASE + "/"):
        return [
            invalid(
                where,
                value,
                "must be a directory under /mnt",
                fix="use a directory such as /mnt/results",
            )
        ]
    return []
