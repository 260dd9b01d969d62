"""Field errors of the Workspace API: ``kaito.apimachinery``'s, under the names the rules use.

API layer. There is one field-error type in the project (:class:`kaito.apimachinery.FieldError`):
it renders as kube-apiserver text and as a ``StatusCause`` and carries the fix; this module only
gathers the constructors the Workspace rules call.
"""

from __future__ import annotations

from kaito.apimachinery import (
    ErrorType,
    FieldError,
    InvalidSpecError,
    duplicate,
    forbidden,
    invalid,
    not_found,
    not_supported,
    render_value,
    required,
    too_many,
    warning,
)

__all__ = (
    "ErrorType",
    "FieldError",
    "InvalidSpecError",
    "duplicate",
    "forbidden",
    "invalid",
    "not_found",
    "not_supported",
    "render_value",
    "required",
    "too_many",
    "warning",
)
