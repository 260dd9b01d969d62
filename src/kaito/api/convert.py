"""The one cattrs converter pair for API types: camelCase on the wire, snake_case in Python.

API layer. ``structure`` is strict by default: unknown fields, wrong types and missing required
fields are all reported together as :class:`InvalidSpecError` with wire paths
(``resource.labelSelector.matchLabels``). The lenient mode drops unknown fields but returns them as
warnings, so nothing is ever lost silently. ``unstructure`` omits ``None`` (Go's ``omitempty``)
and keeps attribute order, so documents written in the conventional order round-trip byte for byte.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from kaito.api.errors import ErrorType, FieldError, InvalidSpecError
from kaito.api.fields import wire_name

__all__ = ("structure", "structure_lenient", "unstructure")

T = TypeVar("T")

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _WrongType(TypeError):
    def __init__(self, expected: str, value: Any) -> None:
        self.expected = expected
        self.value = value
        super().__init__(f"expected {expected}, got {_json_type(value)}")


def _strict_scalar(kind: type) -> Callable[[Any, Any], Any]:
    expected = _TYPE_NAMES[kind]

    def hook(value: Any, _: Any) -> Any:
        if kind is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        raise _WrongType(expected, value)

    return hook


def _note(index: int | str, tp: Any) -> IterableValidationNote:
    where = f"index {index}" if isinstance(index, int) else f"key {index!r}"
    return IterableValidationNote(f"Structuring {where}", index, tp)


def _is_homogeneous_tuple(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_str_dict(tp: Any) -> bool:
    return get_origin(tp) is dict


def _make_converter(*, strict: bool) -> cattrs.Converter:
    conv = cattrs.Converter(
        forbid_extra_keys=strict,
        detailed_validation=True,
        unstruct_collection_overrides={tuple: list},
    )
    for kind in (str, int, bool, float):
        conv.register_structure_hook(kind, _strict_scalar(kind))

    def tuple_factory(tp: Any) -> Callable[[Any, Any], Any]:
        (item_type, _) = get_args(tp)
        item_hook = conv.get_structure_hook(item_type)

        def hook(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise _WrongType("an array", value)
            out, errors = [], []
            for index, item in enumerate(value):
                try:
                    out.append(item_hook(item, item_type))
                except Exception as exc:  # collected and re-raised with the index
                    exc.__notes__ = [*getattr(exc, "__notes__", []), _note(index, item_type)]
                    errors.append(exc)
            if errors:
                raise IterableValidationError("invalid items", errors, tp)
            return tuple(out)

        return hook

    def dict_factory(tp: Any) -> Callable[[Any, Any], Any]:
        _, value_type = get_args(tp)
        value_hook = conv.get_structure_hook(value_type) if value_type is not Any else None

        def hook(value: Any, _: Any) -> dict[Any, Any]:
            if not isinstance(value, dict):
                raise _WrongType("an object", value)
            if value_hook is None:
                return dict(value)
            out, errors = {}, []
            for key, item in value.items():
                try:
                    out[key] = value_hook(item, value_type)
                except Exception as exc:
                    exc.__notes__ = [*getattr(exc, "__notes__", []), _note(str(key), value_type)]
                    errors.append(exc)
            if errors:
                raise IterableValidationError("invalid values", errors, tp)
            return out

        return hook

    conv.register_structure_hook_factory(_is_homogeneous_tuple, tuple_factory)
    conv.register_structure_hook_factory(_is_str_dict, dict_factory)

    def attrs_structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        overrides: dict[str, Any] = {
            a.name: override(rename=wire_name(a)) for a in attrs.fields(cls)
        }
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls,
            conv,
            _cattrs_forbid_extra_keys=strict,
            _cattrs_detailed_validation=True,
            **overrides,
        )

        def hook(value: Any, tp: Any) -> Any:
            if not isinstance(value, dict):
                raise _WrongType("an object", value)
            return inner(value, tp)

        return hook

    def attrs_unstructure_factory(cls: type) -> Callable[[Any], Any]:
        overrides: dict[str, Any] = {
            a.name: override(rename=wire_name(a), omit_if_default=a.default is None)
            for a in attrs.fields(cls)
        }
        inner: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, conv, **overrides)
        order = [wire_name(a) for a in attrs.fields(cls)]

        def hook(obj: Any) -> dict[str, Any]:
            # cattrs emits always-present keys first; restore declaration order on the wire.
            out = inner(obj)
            return {key: out[key] for key in order if key in out}

        return hook

    conv.register_structure_hook_factory(attrs.has, attrs_structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, attrs_unstructure_factory)
    return conv


_STRICT = _make_converter(strict=True)
_LENIENT = _make_converter(strict=False)


def _attr_wire(cls: type, name: str) -> str:
    fields = attrs.fields_dict(cls) if attrs.has(cls) else {}
    return wire_name(fields[name]) if name in fields else name


def _join(path: str, segment: str | int) -> str:
    if isinstance(segment, int):
        return f"{path}[{segment}]"
    if "." in segment or "/" in segment:
        return f"{path}[{segment}]"
    return f"{path}.{segment}" if path else segment


def _walk(exc: BaseException, path: str, cls: Any) -> Iterator[tuple[str, Any, BaseException]]:
    """Yield ``(path, class, leaf exception)`` for every leaf of a cattrs exception tree."""
    if isinstance(exc, ClassValidationError):
        for sub in exc.exceptions:
            names = [n for n in getattr(sub, "__notes__", []) if hasattr(n, "name")]
            if names:
                yield from _walk(sub, _join(path, _attr_wire(exc.cl, names[-1].name)), None)
            else:
                yield from _walk(sub, path, exc.cl)
        return
    if isinstance(exc, IterableValidationError | ExceptionGroup):
        for sub in exc.exceptions:
            notes = getattr(sub, "__notes__", [])
            idx = [n for n in notes if isinstance(n, IterableValidationNote)]
            if idx:
                yield from _walk(sub, _join(path, idx[-1].index), None)
            else:
                yield from _walk(sub, path, cls)
        return
    yield path, cls, exc


def _known_fields(cls: type) -> list[str]:
    return [wire_name(a) for a in attrs.fields(cls)]


def _to_field_errors(exc: BaseException, prefix: str) -> tuple[list[FieldError], list[FieldError]]:
    """Split a cattrs failure into (errors other than unknown fields, unknown-field errors)."""
    errors: list[FieldError] = []
    unknown: list[FieldError] = []
    for path, _cls, leaf in _walk(exc, prefix, None):
        if isinstance(leaf, ForbiddenExtraKeysError):
            known = _known_fields(leaf.cl)
            for key in sorted(leaf.extra_fields):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f'did you mean "{close[0]}"? ' if close else ""
                unknown.append(
                    FieldError(
                        ErrorType.UNKNOWN_FIELD,
                        _join(path, key),
                        "field not declared in the schema",
                        fix=f"{hint}remove it or fix its spelling (known fields here: "
                        + ", ".join(known)
                        + ")",
                    )
                )
        elif isinstance(leaf, KeyError):
            errors.append(
                FieldError(
                    ErrorType.REQUIRED,
                    path,
                    "this field must be set",
                    fix=f"add {path.rsplit('.', 1)[-1]!r}" if path else None,
                )
            )
        elif isinstance(leaf, _WrongType):
            errors.append(
                FieldError(
                    ErrorType.WRONG_TYPE,
                    path,
                    f"expected {leaf.expected}, got {_json_type(leaf.value)}",
                    value=leaf.value,
                    fix=f"write it as {leaf.expected}",
                )
            )
        else:
            errors.append(FieldError(ErrorType.INVALID, path, str(leaf)))
    return errors, unknown


def _subject(data: Any) -> str:
    if isinstance(data, Mapping):
        meta = data.get("metadata")
        if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
            return str(meta["name"])
    return ""


def structure(data: Any, cls: type[T], *, path: str = "") -> T:
    """Build ``cls`` from wire data, strictly: every problem is reported in one error.

    Raises:
        InvalidSpecError: unknown fields, wrong types or missing required fields (all of them).
    """
    try:
        return _STRICT.structure(data, cls)
    except (ClassValidationError, IterableValidationError, _WrongType) as exc:
        errors, unknown = _to_field_errors(exc, path)
        raise InvalidSpecError(errors + unknown, kind=cls.__name__, name=_subject(data)) from None


def structure_lenient(data: Any, cls: type[T], *, path: str = "") -> tuple[T, list[FieldError]]:
    """Build ``cls`` dropping unknown fields; return the object and one warning per dropped field.

    Raises:
        InvalidSpecError: wrong types or missing required fields.
    """
    try:
        return _STRICT.structure(data, cls), []
    except (ClassValidationError, IterableValidationError, _WrongType) as exc:
        errors, unknown = _to_field_errors(exc, path)
        if errors:
            raise InvalidSpecError(errors, kind=cls.__name__, name=_subject(data)) from None
    obj = _LENIENT.structure(data, cls)
    warnings = [attrs.evolve(w, warning=True) for w in unknown]
    return obj, warnings


def unstructure(obj: Any) -> Any:
    """Turn an API object into wire data (plain dicts, lists and scalars)."""
    return _STRICT.unstructure(obj)
