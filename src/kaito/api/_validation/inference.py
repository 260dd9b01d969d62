"""Validation of ``inference``: preset or template, runtime, adapters, inference config.

API layer (pure functions).
"""

from __future__ import annotations

from kaito.api import constants as c
from kaito.api._errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    required,
)
from kaito.api._spec import AdapterSpec, InferenceSpec, PresetSpec
from kaito.api._validation.common import (
    image_field_errors,
    lookup_preset,
    name_field_errors,
    runtime_of,
)
from kaito.api._validation.configs import validate_inference_config
from kaito.api._validation.context import INFERENCE_TEMPLATE, ValidationContext, config_map_ref
from kaito.api._validation.resource import validate_fit
from kaito.api.v1beta1 import Workspace
from kaito.apimachinery import dns1123_label_problems
from kaito.catalog import Preset

__all__ = ("validate_adapter", "validate_inference")


def validate_inference(
    ws: Workspace, inference: InferenceSpec, namespace: str, ctx: ValidationContext
) -> list[FieldError]:
    errors: list[FieldError] = []
    runtime = runtime_of(ws, ctx)
    if inference.preset is None and inference.template is None:
        errors.append(
            required(
                "inference.preset",
                "preset or template must be specified",
                fix="set inference.preset.name to a preset such as phi-4-mini-instruct",
            )
        )
    if inference.preset is not None and inference.template is not None:
        errors.append(
            forbidden("inference.template", "preset and template cannot be set at the same time")
        )
    preset: Preset | None = None
    if inference.preset is not None:
        preset, preset_errors = lookup_preset(
            inference.preset, "inference.preset", ctx, tuning=False
        )
        errors += preset_errors
        errors += _validate_preset_options(inference.preset, preset)
        if not preset_errors:
            errors += _validate_runtime(inference, preset, runtime)
            errors += validate_fit(ws, preset, runtime, namespace, ctx)
    adapters = inference.adapters or ()  # at most 10: the schema's maxItems
    seen: set[str] = set()
    for i, adapter in enumerate(adapters):
        errors += validate_adapter(adapter, f"inference.adapters[{i}]", seen)
    if inference.config is not None:
        errors += name_field_errors("inference.config", inference.config)
    if runtime == c.RuntimeName.VLLM and inference.template is None:
        errors += _check_inference_config(inference, preset, namespace, ctx)
    return errors


def _validate_preset_options(preset: PresetSpec, found: Preset | None) -> list[FieldError]:
    errors = []
    options = preset.preset_options
    secret = options.model_access_secret if options else None
    if found is not None and found.download_auth_required and not secret:
        errors.append(
            required(
                "inference.preset.presetOptions.modelAccessSecret",
                f"preset {found.name} needs a HuggingFace token to download",
                fix="create a Secret with key HF_TOKEN and name it here",
            )
        )
    if secret:
        errors += name_field_errors("inference.preset.presetOptions.modelAccessSecret", secret)
    if preset.access_mode == "private" and not (options and options.image):
        errors.append(
            required(
                "inference.preset.presetOptions.image",
                "accessMode private needs the private model image",
            )
        )
    for i, name in enumerate((options.image_pull_secrets if options else None) or ()):
        errors += name_field_errors(f"inference.preset.presetOptions.imagePullSecrets[{i}]", name)
    return errors


def _validate_runtime(
    inference: InferenceSpec, preset: Preset | None, runtime: str
) -> list[FieldError]:
    path = f"metadata.annotations[{c.ANNOTATION_RUNTIME}]"
    name = inference.preset.name if inference.preset else ""
    if runtime == c.RuntimeName.TRANSFORMERS:
        if preset is None:
            return [
                invalid(
                    "inference.preset.name",
                    name,
                    "the transformers runtime serves catalog presets only",
                    fix="use the vllm runtime for HuggingFace ids",
                )
            ]
        if not preset.transformers:
            return [
                invalid(
                    path,
                    runtime,
                    f"preset {preset.name} cannot run on the transformers runtime",
                    fix="remove the annotation to use vllm",
                )
            ]
        return []
    if preset is not None and not preset.vllm:
        return [
            invalid(
                path, runtime, f"preset {preset.name} cannot run on vllm", fix="use transformers"
            )
        ]
    if preset is not None and inference.adapters and not preset.vllm_lora:
        return [
            invalid(
                "inference.adapters",
                len(inference.adapters),
                f"vLLM cannot apply LoRA adapters to {preset.name}",
                fix=f"set annotation {c.ANNOTATION_RUNTIME}: transformers, or remove the adapters",
            )
        ]
    return []


def validate_adapter(adapter: AdapterSpec, path: str, seen: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    source = adapter.source
    if source is None:
        errors.append(required(f"{path}.source", "an adapter needs a source image or volume"))
    else:
        if not source.name:
            errors.append(required(f"{path}.source.name", "an adapter needs a name"))
        else:
            problems = dns1123_label_problems(source.name, max_length=56)
            if problems:
                errors.append(
                    invalid(
                        f"{path}.source.name",
                        source.name,
                        "; ".join(problems),
                        fix="the name also names the adapter's container and volume",
                    )
                )
            if source.name in seen:
                errors.append(duplicate(f"{path}.source.name", source.name))
            seen.add(source.name)
        if source.urls:
            errors.append(
                forbidden(
                    f"{path}.source.urls",
                    "URLs are not supported as adapter source",
                    fix="package the adapter as an image or put it on a volume",
                )
            )
        if not source.image and source.volume_source is None:
            errors.append(
                required(
                    f"{path}.source.image",
                    "either image or volumeSource must be specified for an adapter source",
                )
            )
        if source.image:
            errors += image_field_errors(f"{path}.source.image", source.image)
        for i, name in enumerate(source.image_pull_secrets or ()):
            errors += name_field_errors(f"{path}.source.imagePullSecrets[{i}]", name)
    return errors  # strength: the schema's pattern (a decimal between 0 and 1)


def _check_inference_config(
    inference: InferenceSpec, preset: Preset | None, namespace: str, ctx: ValidationContext
) -> list[FieldError]:
    ns, name = config_map_ref(namespace, inference.config, default=INFERENCE_TEMPLATE, ctx=ctx)
    data = ctx.config_map(ns, name)
    if data is None and not ctx.knows_cluster:
        return []
    return validate_inference_config(
        data, field="inference.config", cm_name=name, namespace=ns, preset=preset
    )
