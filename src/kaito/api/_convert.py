"""The one cattrs converter for API types: camelCase on the wire, snake_case in Python.

API layer. ``structure`` checks the wire data with the type's structural schema first
(``kaito.apimachinery``: the same pruning and validation the API server applies, so unknown
fields, wrong types, bad enums and missing required fields are reported together, with wire paths
like ``resource.labelSelector.matchLabels``), then builds the attrs object. The lenient mode drops
unknown fields but returns them as warnings, so nothing is ever lost silently. ``unstructure``
omits ``None`` (Go's ``omitempty``) and keeps attribute order, so documents written in the
conventional order round-trip byte for byte.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from kaito.api._fields import fix_at, wire_name
from kaito.api._schema import openapi_schema
from kaito.apimachinery import (
    FieldError,
    InvalidSpecError,
    Schema,
    compile_schema,
    json_type,
    object_meta_type_error,
    type_invalid,
)

__all__ = ("construct", "structure", "structure_lenient", "unstructure", "with_fix")

T = TypeVar("T")


class _WrongType(TypeError):
    """A value a schemaless field's Python type cannot hold (the schema let it through)."""

    def __init__(self, expected: str, value: Any) -> None:
        self.expected = expected
        self.value = value
        super().__init__(f"expected {expected}, got {json_type(value)}")


def _scalar(kind: type) -> Callable[[Any, Any], Any]:
    """Scalars are schema-checked already; JSON's ``1.0`` is an integer (Go stores it as ``1``)."""

    def hook(value: Any, _: Any) -> Any:
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind):
            raise _WrongType(json_type(kind()), value)
        return value

    return hook


def _note(index: int | str, tp: Any) -> IterableValidationNote:
    where = f"index {index}" if isinstance(index, int) else f"key {index!r}"
    return IterableValidationNote(f"Structuring {where}", index, tp)


def _is_homogeneous_tuple(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_str_dict(tp: Any) -> bool:
    return get_origin(tp) is dict


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, unstruct_collection_overrides={tuple: list})
    for kind in (str, int, bool, float):
        conv.register_structure_hook(kind, _scalar(kind))

    def tuple_factory(tp: Any) -> Callable[[Any, Any], Any]:
        (item_type, _) = get_args(tp)
        item_hook = conv.get_structure_hook(item_type)

        def hook(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise _WrongType("array", value)
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
                raise _WrongType("object", value)
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
            _cattrs_detailed_validation=True,
            **overrides,
        )

        def hook(value: Any, tp: Any) -> Any:
            if not isinstance(value, dict):
                raise _WrongType("object", value)
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


_CONVERTER = _make_converter()


def _join(path: str, segment: str | int) -> str:
    if isinstance(segment, int):
        return f"{path}[{segment}]"
    return f"{path}.{segment}" if path else segment


def _attr_wire(cls: type, name: str) -> str:
    fields = attrs.fields_dict(cls) if attrs.has(cls) else {}
    return wire_name(fields[name]) if name in fields else name


def _walk(exc: BaseException, path: str) -> Iterator[tuple[str, BaseException]]:
    """Yield ``(path, leaf exception)`` for every leaf of a cattrs exception tree."""
    if isinstance(exc, ClassValidationError):
        for sub in exc.exceptions:
            names = [n for n in getattr(sub, "__notes__", []) if hasattr(n, "name")]
            where = _join(path, _attr_wire(exc.cl, names[-1].name)) if names else path
            yield from _walk(sub, where)
        return
    if isinstance(exc, IterableValidationError | ExceptionGroup):
        for sub in exc.exceptions:
            notes = getattr(sub, "__notes__", [])
            index = [n for n in notes if isinstance(n, IterableValidationNote)]
            yield from _walk(sub, _join(path, index[-1].index) if index else path)
        return
    yield path, exc


def _is_root(cls: type) -> bool:
    return attrs.has(cls) and {"kind", "metadata"} <= set(attrs.fields_dict(cls))


@cache
def _schema_of(cls: type) -> Schema:
    return compile_schema(openapi_schema(cls, root=_is_root(cls)))


def _subject(data: Any) -> str:
    if isinstance(data, Mapping):
        meta = data.get("metadata")
        if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
            return str(meta["name"])
    return ""


def _checked(data: Any, cls: type, path: str) -> tuple[Any, list[FieldError], list[FieldError]]:
    """Prune and validate a copy of ``data``: ``(pruned copy, errors, unknown-field errors)``."""
    value = copy.deepcopy(data)
    schema = _schema_of(cls)
    root = _is_root(cls)
    errors: list[FieldError] = []
    if root and isinstance(value, dict):
        problem = object_meta_type_error(value.get("metadata"))
        if problem is not None:
            return value, [problem.under(path)], []
    unknown: list[str] = []
    schema.prune(value, "", unknown, root=root)
    errors += [with_fix(e, cls).under(path) for e in schema.validate(value, "", root=root)]
    return value, errors, [e.under(path) for e in schema.unknown_field_errors(unknown)]


def with_fix(error: FieldError, cls: type) -> FieldError:
    """``error`` with the fix its field declares (see :func:`kaito.api._fields.fix_at`)."""
    if error.fix:
        return error
    fix = fix_at(cls, error.field)
    return attrs.evolve(error, fix=fix) if fix else error


def _wrong_type(path: str, leaf: _WrongType) -> FieldError:
    kind = json_type(leaf.value)
    return type_invalid(path, kind, f'{path} in body must be of type {leaf.expected}: "{kind}"')


def _construct(value: Any, cls: type[T], data: Any, path: str) -> T:
    try:
        built: T = _CONVERTER.structure(value, cls)
    except (ClassValidationError, IterableValidationError, _WrongType) as exc:
        errors = [
            _wrong_type(where, leaf)
            if isinstance(leaf, _WrongType)
            else FieldError("Invalid", where, detail=str(leaf))
            for where, leaf in _walk(exc, path)
        ]
        raise InvalidSpecError(errors, kind=cls.__name__, name=_subject(data)) from None
    return built


def construct(value: Any, cls: type[T]) -> T:
    """Build ``cls`` from wire data its structural schema has already accepted (no re-check).

    Raises:
        InvalidSpecError: a value the Python type cannot hold where the schema is silent
            (a schemaless field that is not an object).
    """
    return _construct(value, cls, value, "")


def structure(data: Any, cls: type[T], *, path: str = "") -> T:
    """Build ``cls`` from wire data, strictly: every problem is reported in one error.

    Raises:
        InvalidSpecError: unknown fields, wrong types, unsupported enum values, missing required
            fields, anything the structural schema refuses (all of them).
    """
    value, errors, unknown = _checked(data, cls, path)
    if errors or unknown:
        raise InvalidSpecError(errors + unknown, kind=cls.__name__, name=_subject(data))
    return _construct(value, cls, data, path)


def structure_lenient(data: Any, cls: type[T], *, path: str = "") -> tuple[T, list[FieldError]]:
    """Build ``cls`` dropping unknown fields; return the object and one warning per dropped field.

    Raises:
        InvalidSpecError: anything else the structural schema refuses.
    """
    value, errors, unknown = _checked(data, cls, path)
    if errors:
        raise InvalidSpecError(errors, kind=cls.__name__, name=_subject(data))
    return _construct(value, cls, data, path), [attrs.evolve(w, warning=True) for w in unknown]


def unstructure(obj: Any) -> Any:
    """Turn an API object into wire data (plain dicts, lists and scalars)."""
    return _CONVERTER.unstructure(obj)
