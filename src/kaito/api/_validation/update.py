"""Update-time validation: what may not change once a Workspace exists.

API layer (pure functions). Immutable: toggling inference/tuning, ``resource.count``,
``resource.partition``, ``resource.labelSelector``, ``resource.instanceType`` (once set),
``inference.preset``, setting or unsetting ``inference.template``, tuning ``preset``, ``method``
and ``input.name``. Adapters may change and are validated again.
"""

from __future__ import annotations

from kaito.api._errors import FieldError, forbidden, invalid, required
from kaito.api._validation.common import image_field_errors, selector_as_map
from kaito.api._validation.context import ValidationContext
from kaito.api._validation.inference import validate_adapter
from kaito.api._validation.workspace import validate_metadata
from kaito.api.v1beta1 import Workspace

__all__ = ("validate_workspace_update",)

_IMMUTABLE = "field is immutable"


def validate_workspace_update(
    old: Workspace, new: Workspace, ctx: ValidationContext
) -> list[FieldError]:
    """Validate an update of ``old`` into ``new``; return all errors and warnings."""
    errors: list[FieldError] = list(validate_metadata(new))
    if (old.inference is None) != (new.inference is None):
        errors.append(forbidden("inference", "inference cannot be toggled once set"))
    if (old.tuning is None) != (new.tuning is None):
        errors.append(forbidden("tuning", "tuning cannot be toggled once set"))
    errors += _resource_update(old, new, ctx)
    if old.inference is not None and new.inference is not None:
        if old.inference.preset != new.inference.preset:
            errors.append(
                forbidden(
                    "inference.preset",
                    _IMMUTABLE,
                    fix="create a new Workspace to serve another model",
                )
            )
        if (old.inference.template is None) != (new.inference.template is None):
            errors.append(
                forbidden("inference.template", "template cannot be set or unset after creation")
            )
        seen: set[str] = set()
        for i, adapter in enumerate(new.inference.adapters or ()):
            errors += validate_adapter(adapter, f"inference.adapters[{i}]", seen)
    if old.tuning is not None and new.tuning is not None:
        if old.tuning.preset != new.tuning.preset:
            errors.append(forbidden("tuning.preset", _IMMUTABLE))
        if (old.tuning.method or "").lower() != (new.tuning.method or "").lower():
            errors.append(forbidden("tuning.method", _IMMUTABLE))
        if old.tuning.input.name != new.tuning.input.name:
            errors.append(forbidden("tuning.input.name", _IMMUTABLE))
        if new.tuning.input.image:
            errors += image_field_errors("tuning.input.image", new.tuning.input.image)
        if new.tuning.output.image:
            errors += image_field_errors("tuning.output.image", new.tuning.output.image)
    return errors


def _resource_update(old: Workspace, new: Workspace, ctx: ValidationContext) -> list[FieldError]:
    errors: list[FieldError] = []
    o, n = old.resource, new.resource
    if o is None or n is None:
        if o is not None and n is None:
            errors.append(required("resource", "resource cannot be removed"))
        return errors
    if o.count is not None and n.count is not None and o.count != n.count:
        errors.append(forbidden("resource.count", _IMMUTABLE))
    if o.partition != n.partition:
        errors.append(forbidden("resource.partition", _IMMUTABLE))
    if ctx.node_auto_provisioning:
        if not n.instance_type:
            errors.append(
                required(
                    "resource.instanceType",
                    "instanceType is required when node auto-provisioning is enabled",
                )
            )
        elif o.instance_type and o.instance_type != n.instance_type:
            errors.append(
                forbidden(
                    "resource.instanceType",
                    f"instanceType cannot be changed once set (was {o.instance_type!r})",
                    fix="create a new Workspace for another instance type",
                )
            )
    elif n.instance_type and (not o.instance_type or o.instance_type != n.instance_type):
        errors.append(
            invalid(
                "resource.instanceType",
                n.instance_type,
                "instanceType must stay empty when node auto-provisioning is disabled",
            )
        )
    old_map, new_map = selector_as_map(o.label_selector), selector_as_map(n.label_selector)
    if old_map is None or new_map is None:
        errors.append(
            invalid(
                "resource.labelSelector",
                "",
                "only matchLabels or 'In' expressions with one value are supported",
            )
        )
    elif old_map != new_map:
        errors.append(forbidden("resource.labelSelector", _IMMUTABLE))
    return errors
