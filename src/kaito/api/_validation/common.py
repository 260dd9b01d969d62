"""Helpers shared by the Workspace validation modules: names, images, presets, runtime.

API layer (pure functions).
"""

from __future__ import annotations

import re
from typing import Final

from kaito.api import constants as c
from kaito.api._errors import FieldError, invalid
from kaito.api._meta import LabelSelector
from kaito.api._spec import PresetSpec
from kaito.api._validation import syntax
from kaito.api._validation.context import ValidationContext
from kaito.api.v1beta1 import Workspace
from kaito.apimachinery import dns1123_subdomain_problems
from kaito.catalog import Preset

__all__ = (
    "image_field_errors",
    "lookup_preset",
    "name_field_errors",
    "runtime_of",
    "selector_as_map",
)

_HF_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def runtime_of(ws: Workspace, ctx: ValidationContext) -> str:
    """The inference runtime: the ``kaito.sh/runtime`` annotation, else vLLM when enabled."""
    annotations = ws.metadata.annotations or {}
    if annotations.get(c.ANNOTATION_RUNTIME) == c.RuntimeName.TRANSFORMERS:
        return c.RuntimeName.TRANSFORMERS
    if not ctx.vllm_enabled:
        return c.RuntimeName.TRANSFORMERS
    return c.RuntimeName.VLLM


def selector_as_map(selector: LabelSelector | None) -> dict[str, str] | None:
    """The selector as key=value pairs, or None when it uses anything but single-value ``In``."""
    if selector is None:
        return {}
    out = dict(selector.match_labels or {})
    for req in selector.match_expressions or ():
        if req.operator != "In" or len(req.values or ()) != 1:
            return None
        out[req.key] = (req.values or ("",))[0]
    return out


def lookup_preset(
    preset: PresetSpec, path: str, ctx: ValidationContext, *, tuning: bool
) -> tuple[Preset | None, list[FieldError]]:
    """Find the preset; errors when unknown or deprecated; None with no error for HF ids."""
    name = preset.name
    found = ctx.presets.get(name)
    if found is not None:
        if found.deprecated:
            return None, [
                invalid(
                    f"{path}.name",
                    name,
                    f"model {found.name} is deprecated and no longer supported",
                    fix="choose a current preset, e.g. phi-4-mini-instruct",
                )
            ]
        if tuning and not found.tuning:
            return None, [
                invalid(
                    f"{path}.name",
                    name,
                    f"preset {found.name} does not support tuning",
                    fix="use one of: " + ", ".join(ctx.presets.tunable()),
                )
            ]
        return found, []
    if not tuning and _HF_ID.match(name):
        return None, []
    hint = "a HuggingFace id org/model or " if not tuning else ""
    choices = ctx.presets.tunable() if tuning else ctx.presets.names()
    return None, [
        invalid(
            f"{path}.name",
            name,
            f"unsupported {'tuning' if tuning else 'inference'} preset name",
            fix=f"use {hint}one of: {', '.join(choices)}",
        )
    ]


def image_field_errors(path: str, image: str) -> list[FieldError]:
    problems = syntax.image_reference_problems(image)
    if not problems:
        return []
    return [
        invalid(
            path,
            image,
            "; ".join(problems),
            fix="write a reference like myregistry.azurecr.io/my-adapter:0.0.1",
        )
    ]


def name_field_errors(path: str, name: str) -> list[FieldError]:
    problems = dns1123_subdomain_problems(name)
    if not problems:
        return []
    return [invalid(path, name, "; ".join(problems), fix="use the name of an existing object")]
