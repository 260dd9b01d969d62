"""Create-time validation of a Workspace: every rule of upstream's admission webhook.

API layer (pure functions). Works on the storage version (``v1beta1``); callers convert
``v1alpha1`` objects first. Returns every problem found, errors and warnings, never just the first.
The rules for each part live beside this module: ``resource``, ``inference``, ``tuning``.
"""

from __future__ import annotations

from typing import Final

from kaito.api import constants as c
from kaito.api._errors import FieldError, forbidden, invalid, not_supported, required
from kaito.api._validation.context import (
    INFERENCE_TEMPLATE,
    TUNING_TEMPLATES,
    ValidationContext,
    config_map_ref,
)
from kaito.api._validation.inference import validate_inference
from kaito.api._validation.resource import validate_resource
from kaito.api._validation.tuning import validate_tuning
from kaito.api.v1beta1 import Workspace
from kaito.apimachinery import dns1123_label_problems

__all__ = ("referenced_config_maps", "validate_metadata", "validate_workspace")

_ANNOTATION_CHOICES: Final = {
    c.ANNOTATION_PERFORMANCE_MODE: ("balanced", "interactivity", "throughput"),
    c.ANNOTATION_USE_LOCAL_WEIGHTS: ("true", "false"),
    c.ANNOTATION_NODE_IMAGE_FAMILY: ("azurelinux", "ubuntu"),
    c.ANNOTATION_RUNTIME: (c.RuntimeName.VLLM, c.RuntimeName.TRANSFORMERS),
}


def validate_workspace(ws: Workspace, ctx: ValidationContext) -> list[FieldError]:
    """Validate a Workspace being created; return all errors and warnings."""
    errors: list[FieldError] = []
    errors += validate_metadata(ws)
    if ws.inference is None and ws.tuning is None:
        errors.append(
            required(
                "inference",
                "either inference or tuning must be specified, not neither",
                fix="add an inference section to serve a model or a tuning section to tune one",
            )
        )
    if ws.inference is not None and ws.tuning is not None:
        errors.append(
            forbidden(
                "tuning",
                "either inference or tuning must be specified, but not both",
                fix="split them into two Workspaces",
            )
        )
    errors += validate_resource(ws, ctx)
    namespace = ws.metadata.namespace or "default"
    if ws.inference is not None:
        errors += validate_inference(ws, ws.inference, namespace, ctx)
    if ws.tuning is not None:
        errors += validate_tuning(ws.tuning, ws.resource, namespace, ctx)
    return errors


def validate_metadata(ws: Workspace) -> list[FieldError]:
    errors = []
    name = ws.metadata.name
    if not name and not ws.metadata.generate_name:
        errors.append(required("metadata.name", "a Workspace needs a name"))
    elif name:
        problems = dns1123_label_problems(name)
        if problems:
            errors.append(invalid("metadata.name", name, "; ".join(problems)))
    for key, choices in _ANNOTATION_CHOICES.items():
        value = (ws.metadata.annotations or {}).get(key)
        if value is not None and value not in choices:
            errors.append(not_supported(f"metadata.annotations[{key}]", value, choices))
    return errors


def referenced_config_maps(ws: Workspace, ctx: ValidationContext) -> list[tuple[str, str]]:
    """The ``(namespace, name)`` of every ConfigMap validation will look at (for pre-fetching)."""
    namespace = ws.metadata.namespace or "default"
    refs = []
    if ws.inference is not None:
        refs.append(
            config_map_ref(namespace, ws.inference.config, default=INFERENCE_TEMPLATE, ctx=ctx)
        )
    if ws.tuning is not None and ws.tuning.method in TUNING_TEMPLATES:
        refs.append(
            config_map_ref(
                namespace, ws.tuning.config, default=TUNING_TEMPLATES[ws.tuning.method], ctx=ctx
            )
        )
    return refs
