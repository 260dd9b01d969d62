"""Validation of ``tuning``: method, preset, configuration, input and output.

API layer (pure functions).
"""

from __future__ import annotations

from kaito.api._errors import (
    FieldError,
    forbidden,
    invalid,
    required,
    warning,
)
from kaito.api._spec import DataDestination, DataSource, TuningSpec
from kaito.api._validation import syntax
from kaito.api._validation.common import image_field_errors, lookup_preset, name_field_errors
from kaito.api._validation.configs import validate_tuning_config
from kaito.api._validation.context import TUNING_TEMPLATES, ValidationContext, config_map_ref
from kaito.api.v1beta1 import ResourceSpec
from kaito.apimachinery import dns1123_label_problems
from kaito.catalog import Preset

__all__ = ("validate_tuning",)


def validate_tuning(
    tuning: TuningSpec, resource: ResourceSpec | None, namespace: str, ctx: ValidationContext
) -> list[FieldError]:
    errors: list[FieldError] = []
    if resource is not None and resource.count is not None and resource.count > 1:
        errors.append(
            invalid(
                "resource.count",
                resource.count,
                "tuning does not support multi-node configurations",
                fix="set count to 1",
            )
        )
    if resource is not None and resource.partition is not None:
        errors.append(
            forbidden("resource.partition", "GPU partitioning is not supported for tuning")
        )
    method = tuning.method
    if not method:
        # The schema checks the value (enum lora, qlora); it does not require the field.
        errors.append(
            required("tuning.method", "the tuning method is required", fix="lora or qlora")
        )
    if tuning.preset is None:
        errors.append(
            required("tuning.preset", "tuning needs a preset", fix="set tuning.preset.name")
        )
    else:
        preset, preset_errors = lookup_preset(tuning.preset, "tuning.preset", ctx, tuning=True)
        errors += preset_errors
        if preset is not None and method in TUNING_TEMPLATES:
            errors += _tuning_memory_warning(preset, method, resource, ctx)
    if tuning.config is not None:
        errors += name_field_errors("tuning.config", tuning.config)
    if method in TUNING_TEMPLATES:
        ns, name = config_map_ref(
            namespace, tuning.config, default=TUNING_TEMPLATES[method], ctx=ctx
        )
        data = ctx.config_map(ns, name)
        if data is not None or ctx.knows_cluster:
            errors += validate_tuning_config(
                data, field="tuning.config", cm_name=name, namespace=ns, method=method
            )
    errors += _validate_input(tuning.input, ctx)
    errors += _validate_output(tuning.output)
    return errors


def _tuning_memory_warning(
    preset: Preset, method: str, resource: ResourceSpec | None, ctx: ValidationContext
) -> list[FieldError]:
    if resource is None or not resource.instance_type or preset.tuning_memory is None:
        return []
    sku = ctx.skus.get(resource.instance_type)
    if sku is None or method == "qlora":
        return []
    if sku.gpu_memory >= preset.tuning_memory:
        return []
    return [
        warning(
            "resource.instanceType",
            f"LoRA tuning of {preset.name} is sized for {preset.tuning_memory:g}Gi of GPU memory "
            f"and {sku.name} has {sku.gpu_memory:g}Gi; the Job may run out of memory",
            value=resource.instance_type,
            fix="use qlora or a larger instance type",
        )
    ]


def _validate_input(source: DataSource, ctx: ValidationContext) -> list[FieldError]:
    path = "tuning.input"
    errors: list[FieldError] = []
    chosen = [
        name
        for name, present in (
            ("urls", bool(source.urls)),
            ("volumeSource", source.volume_source is not None),
            ("image", bool(source.image)),
        )
        if present
    ]
    if len(chosen) != 1:
        detail = "none is set" if not chosen else f"{' and '.join(chosen)} are all set"
        errors.append(
            invalid(
                path,
                chosen,
                f"exactly one of urls, volumeSource or image must be specified; {detail}",
                fix="keep exactly one data source",
            )
        )
    for i, url in enumerate(source.urls or ()):
        problems = syntax.url_problems(url, allow_local=ctx.allow_local_urls)
        if problems:
            errors.append(
                invalid(
                    f"{path}.urls[{i}]",
                    url,
                    "; ".join(problems),
                    fix="use a public http(s) URL of the data file",
                )
            )
    if source.image:
        errors += image_field_errors(f"{path}.image", source.image)
    if source.name:
        problems = dns1123_label_problems(source.name)
        if problems:
            errors.append(invalid(f"{path}.name", source.name, "; ".join(problems)))
    for i, name in enumerate(source.image_pull_secrets or ()):
        errors += name_field_errors(f"{path}.imagePullSecrets[{i}]", name)
    return errors


def _validate_output(dest: DataDestination) -> list[FieldError]:
    path = "tuning.output"
    errors: list[FieldError] = []
    if bool(dest.image) == (dest.volume_source is not None):
        errors.append(
            required(
                path,
                "exactly one of image or volumeSource must be specified",
                fix="push the adapter to an image (with imagePushSecret) or write it to a volume",
            )
        )
    if dest.image:
        errors += image_field_errors(f"{path}.image", dest.image)
        if not dest.image_push_secret:
            errors.append(
                required(
                    f"{path}.imagePushSecret",
                    "pushing to an image needs credentials",
                    fix="create a docker-registry Secret (kubectl create secret docker-registry) "
                    "and name it in imagePushSecret",
                )
            )
    if dest.image_push_secret:
        errors += name_field_errors(f"{path}.imagePushSecret", dest.image_push_secret)
    return errors
