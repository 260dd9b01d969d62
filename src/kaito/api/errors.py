"""Field errors in the style of Kubernetes (``path: Type: value: detail``), with the fix.

API layer: pure data, no I/O. Validation, parsing and the admission webhook all report problems
as ``FieldError`` values; ``InvalidSpecError`` carries every problem found, never just the first.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs

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


class ErrorType(enum.Enum):
    """The kinds of field error, with the words Kubernetes prints for each."""

    REQUIRED = "Required value"
    INVALID = "Invalid value"
    NOT_SUPPORTED = "Unsupported value"
    FORBIDDEN = "Forbidden"
    DUPLICATE = "Duplicate value"
    TOO_MANY = "Too many"
    NOT_FOUND = "Not found"
    UNKNOWN_FIELD = "Unknown field"
    WRONG_TYPE = "Invalid type"


_NO_VALUE: Final = object()


def render_value(value: Any) -> str:
    """Render a bad value as Kubernetes does: strings quoted, other scalars bare, JSON otherwise."""
    if isinstance(value, str):
        return json.dumps(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


@attrs.frozen
class FieldError:
    """One problem at one field path.

    ``field`` is the JSON path on the wire (``inference.adapters[0].strength``); ``value`` is the
    offending value (omitted for missing fields); ``detail`` says what is wrong and ``fix`` what
    to do about it.
    """

    type: ErrorType
    field: str
    detail: str = ""
    value: Any = _NO_VALUE
    fix: str | None = None
    #: Warnings are reported but do not make an object invalid.
    warning: bool = False

    @property
    def has_value(self) -> bool:
        return self.value is not _NO_VALUE

    def __str__(self) -> str:
        parts = [f"{self.field or '<root>'}: {self.type.value}"]
        if self.has_value:
            parts.append(render_value(self.value))
        text = ": ".join(parts)
        if self.detail:
            text += f": {self.detail}"
        if self.fix:
            text += f"; {self.fix}"
        return text

    def under(self, prefix: str) -> FieldError:
        """Return this error with its path nested under ``prefix``."""
        if not prefix:
            return self
        joined = prefix if not self.field else f"{prefix}.{self.field}"
        if self.field.startswith("["):
            joined = prefix + self.field
        return attrs.evolve(self, field=joined)


# Constructors named after the Kubernetes helpers they mirror (field.Required, field.Invalid...).
def required(field: str, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.REQUIRED, field, detail, fix=fix)


def invalid(field: str, value: Any, detail: str, *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.INVALID, field, detail, value=value, fix=fix)


def not_supported(
    field: str, value: Any, supported: Iterable[str], *, fix: str | None = None
) -> FieldError:
    choices = ", ".join(json.dumps(s) for s in supported)
    return FieldError(
        ErrorType.NOT_SUPPORTED, field, f"supported values: {choices}", value=value, fix=fix
    )


def forbidden(field: str, detail: str, *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.FORBIDDEN, field, detail, fix=fix)


def duplicate(field: str, value: Any, *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.DUPLICATE, field, value=value, fix=fix)


def too_many(field: str, count: int, limit: int, *, fix: str | None = None) -> FieldError:
    return FieldError(
        ErrorType.TOO_MANY, field, f"must have at most {limit} items", value=count, fix=fix
    )


def warning(
    field: str, detail: str, *, value: Any = _NO_VALUE, fix: str | None = None
) -> FieldError:
    """A problem worth telling the user about that does not make the object invalid."""
    return FieldError(ErrorType.INVALID, field, detail, value=value, fix=fix, warning=True)


def not_found(field: str, value: Any, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.NOT_FOUND, field, detail, value=value, fix=fix)


class InvalidSpecError(ValueError):
    """A Workspace (or document) failed parsing or validation; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[FieldError], *, kind: str = "Workspace", name: str = ""):
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.kind = kind
        self.name = name
        super().__init__(self.summary())

    def summary(self) -> str:
        """The one-message form kube-apiserver uses: ``Kind "name" is invalid: [e1, e2]``."""
        subject = f'{self.kind} "{self.name}"' if self.name else self.kind
        problems = [str(e) for e in self.errors if not e.warning]
        if len(problems) == 1:
            return f"{subject} is invalid: {problems[0]}"
        return f"{subject} is invalid: [{', '.join(problems)}]"
