"""Field errors as kube-apiserver words them (``k8s.io/apimachinery/pkg/util/validation/field``).

Bottom layer (pure data). One :class:`FieldError` serves every front door: the in-process API
server renders it into a ``Status`` (message and ``details.causes``), the admission webhook and
``kaito validate`` print it. An optional ``fix`` says what to do; errors that kube-apiserver itself
produces (schema, metadata) carry none, so they read exactly as the real server's.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs

__all__ = (
    "NO_VALUE",
    "ErrorType",
    "FieldError",
    "InvalidSpecError",
    "duplicate",
    "duplicate_field",
    "forbidden",
    "go_float",
    "go_quote",
    "internal",
    "invalid",
    "invalid_message",
    "not_found",
    "not_supported",
    "render_value",
    "required",
    "too_long",
    "too_many",
    "type_invalid",
    "unknown_field",
    "warning",
)


class _NoValue:
    """The marker for "this error carries no value" (``omitValue`` in apimachinery)."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()


class ErrorType(enum.Enum):
    """The kinds of field error: ``(cause reason, words printed)``, as in apimachinery.

    ``UNKNOWN_FIELD`` and ``DUPLICATE_FIELD`` are strict-decoding problems: kube-apiserver
    refuses them with 400 ``strict decoding error: unknown field "x"`` rather than as a cause of a
    422; they are field errors here so that ``kaito validate`` can print them beside the rest.
    """

    NOT_FOUND = ("FieldValueNotFound", "Not found")
    REQUIRED = ("FieldValueRequired", "Required value")
    DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
    INVALID = ("FieldValueInvalid", "Invalid value")
    NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
    FORBIDDEN = ("FieldValueForbidden", "Forbidden")
    TOO_LONG = ("FieldValueTooLong", "Too long")
    TOO_MANY = ("FieldValueTooMany", "Too many")
    INTERNAL = ("InternalError", "Internal error")
    TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
    UNKNOWN_FIELD = ("FieldValueUnknown", "Unknown field")
    DUPLICATE_FIELD = ("FieldValueDuplicateField", "Duplicate field")

    @property
    def reason(self) -> str:
        """The ``StatusCause.reason`` (``FieldValueInvalid``...)."""
        return self.value[0]

    @property
    def words(self) -> str:
        """What kube-apiserver prints (``Invalid value``...)."""
        return self.value[1]


# Types whose body never shows the value (apimachinery's ErrorBody).
_VALUELESS: Final = frozenset(
    {
        ErrorType.REQUIRED,
        ErrorType.FORBIDDEN,
        ErrorType.TOO_LONG,
        ErrorType.INTERNAL,
        ErrorType.UNKNOWN_FIELD,
        ErrorType.DUPLICATE_FIELD,
    }
)
_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Quote a string as Go's ``%q`` does (printable characters kept, the rest escaped)."""
    out = ['"']
    for char in text:
        escaped = _GO_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            if code < 0x80:
                out.append(f"\\x{code:02x}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_float(value: float, *, bits: int = 64) -> str:
    """Format a float as Go's ``strconv.FormatFloat(v, 'g', -1, bits)`` (what ``%v`` prints).

    The shortest digits that round-trip (at ``bits`` precision), in exponent form when the exponent
    is below -4 or at least 6 (``1e+06``, ``123456``).
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits_text = _shortest_float32(value) if bits == 32 else repr(value)
    mantissa, exponent = _decompose(digits_text)
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-")
    point = exponent + 1  # position of the decimal point after the first digit
    if exponent < -4 or exponent >= 6:
        head, tail = digits[0], digits[1:]
        body = head + ("." + tail if tail else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_float32(value: float) -> str:
    import struct

    (rounded,) = struct.unpack("f", struct.pack("f", value))
    for precision in range(1, 10):
        text = f"{rounded:.{precision}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == rounded:
            return text
    return repr(rounded)


def _decompose(text: str) -> tuple[str, int]:
    """``"1.25e-07"`` -> (``"125"``, -7): significant digits and the exponent of the first one."""
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    exponent = 0
    if "e" in text:
        text, exp_text = text.split("e")
        exponent = int(exp_text)
    whole, _, fraction = text.partition(".")
    digits = (whole + fraction).lstrip("0")
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    exponent += len(whole) - 1 - leading_zeros
    digits = digits.rstrip("0") or "0"
    return sign + digits, exponent


def render_value(value: Any) -> str:
    """Render a bad value as apimachinery does: ``%q`` strings, bare scalars, JSON otherwise."""
    if isinstance(value, str):
        return go_quote(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _error_type(value: ErrorType | str) -> ErrorType:
    if isinstance(value, ErrorType):
        return value
    return _BY_SHORT_NAME[value]


_BY_SHORT_NAME: Final = {
    "NotFound": ErrorType.NOT_FOUND,
    "Required": ErrorType.REQUIRED,
    "Duplicate": ErrorType.DUPLICATE,
    "Invalid": ErrorType.INVALID,
    "NotSupported": ErrorType.NOT_SUPPORTED,
    "Forbidden": ErrorType.FORBIDDEN,
    "TooLong": ErrorType.TOO_LONG,
    "TooMany": ErrorType.TOO_MANY,
    "Internal": ErrorType.INTERNAL,
    "TypeInvalid": ErrorType.TYPE_INVALID,
    "UnknownField": ErrorType.UNKNOWN_FIELD,
    "DuplicateField": ErrorType.DUPLICATE_FIELD,
}


@attrs.frozen
class FieldError:
    """One problem at one field path (``field.Error``), with an optional fix.

    ``type`` accepts an :class:`ErrorType` or its short name (``"Invalid"``, ``"Required"``...);
    ``field`` is the path on the wire (``inference.adapters[0].strength``); ``value`` the
    offending value (:data:`NO_VALUE` when there is none to show); ``detail`` what is wrong and
    ``fix`` what to do about it. Warnings are reported but do not make an object invalid.
    """

    type: ErrorType = attrs.field(converter=_error_type)
    field: str
    value: Any = NO_VALUE
    detail: str = ""
    fix: str | None = None
    warning: bool = False

    @property
    def has_value(self) -> bool:
        return self.value is not NO_VALUE

    def body(self) -> str:
        """The message without the field path (``StatusCause.message``), fix appended."""
        text = self.type.words
        if self.type not in _VALUELESS and self.has_value:
            text += ": " + render_value(self.value)
        if self.detail:
            text += ": " + self.detail
        if self.fix:
            text += "; " + self.fix
        return text

    def message(self) -> str:
        """``field: body``, as ``field.Error.Error()`` prints it."""
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def __str__(self) -> str:
        return self.message()

    def cause(self) -> dict[str, str]:
        """The ``StatusCause`` of this error."""
        return {"reason": self.type.reason, "message": self.body(), "field": self.field}

    def strict_text(self) -> str:
        """The strict-decoding wording: ``unknown field "a.b"`` / ``duplicate field "a.b"``."""
        kind = "duplicate field" if self.type is ErrorType.DUPLICATE_FIELD else "unknown field"
        return f"{kind} {json.dumps(self.field, ensure_ascii=False)}"

    def under(self, prefix: str) -> FieldError:
        """Return this error with its path nested under ``prefix``."""
        if not prefix:
            return self
        if not self.field:
            joined = prefix
        elif self.field.startswith("["):
            joined = prefix + self.field
        else:
            joined = f"{prefix}.{self.field}"
        return attrs.evolve(self, field=joined)


def invalid_message(qualified_kind: str, name: str, errors: Sequence[FieldError]) -> str:
    """``Kind "name" is invalid: [e1, e2]`` (duplicates dropped), as ``errors.NewInvalid`` says."""
    messages: list[str] = []
    for error in errors:
        text = error.message()
        if text not in messages:
            messages.append(text)
    subject = f"{qualified_kind} {go_quote(name)}"
    if not messages:
        return f"{subject} is invalid"
    if len(messages) == 1:
        return f"{subject} is invalid: {messages[0]}"
    return f"{subject} is invalid: [{', '.join(messages)}]"


class InvalidSpecError(ValueError):
    """An object failed decoding or validation; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[FieldError], *, kind: str = "Workspace", name: str = ""):
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.kind = kind
        self.name = name
        super().__init__(self.summary())

    def summary(self) -> str:
        """The one-message form kube-apiserver uses: ``Kind "name" is invalid: [e1, e2]``."""
        return invalid_message(self.kind, self.name, [e for e in self.errors if not e.warning])


# Constructors named after the apimachinery helpers they mirror (field.Required, field.Invalid...).
def required(field: str, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.REQUIRED, field, detail=detail, fix=fix)


def invalid(field: str, value: Any, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.INVALID, field, value, detail, fix=fix)


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(ErrorType.TYPE_INVALID, field, value, detail)


def not_supported(
    field: str, value: Any, supported: Iterable[Any], *, fix: str | None = None
) -> FieldError:
    choices = ", ".join(go_quote(s if isinstance(s, str) else render_value(s)) for s in supported)
    detail = f"supported values: {choices}" if choices else ""
    return FieldError(ErrorType.NOT_SUPPORTED, field, value, detail, fix=fix)


def forbidden(field: str, detail: str, *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.FORBIDDEN, field, detail=detail, fix=fix)


def duplicate(field: str, value: Any, *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.DUPLICATE, field, value, fix=fix)


def too_many(field: str, count: int, limit: int, *, fix: str | None = None) -> FieldError:
    noun = "item" if limit == 1 else "items"
    return FieldError(
        ErrorType.TOO_MANY, field, count, f"must have at most {limit} {noun}", fix=fix
    )


def too_long(field: str, limit: int, *, fix: str | None = None) -> FieldError:
    noun = "byte" if limit == 1 else "bytes"
    return FieldError(
        ErrorType.TOO_LONG, field, detail=f"may not be more than {limit} {noun}", fix=fix
    )


def not_found(field: str, value: Any, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.NOT_FOUND, field, value, detail, fix=fix)


def internal(field: str, detail: str) -> FieldError:
    return FieldError(ErrorType.INTERNAL, field, detail=detail)


def unknown_field(field: str, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.UNKNOWN_FIELD, field, detail=detail, fix=fix)


def duplicate_field(field: str, detail: str = "", *, fix: str | None = None) -> FieldError:
    return FieldError(ErrorType.DUPLICATE_FIELD, field, detail=detail, fix=fix)


def warning(
    field: str, detail: str, *, value: Any = NO_VALUE, fix: str | None = None
) -> FieldError:
    """A problem worth telling the user about that does not make the object invalid."""
    return FieldError(ErrorType.INVALID, field, value, detail, fix=fix, warning=True)
