"""Structural OpenAPI v3 schemas, compiled once: prune, default and validate as kube-apiserver does.

Bottom layer (pure functions over JSON values, changed in place). The semantics are
apiextensions-apiserver's:

- **pruning** drops fields a schema does not declare, except under
  ``x-kubernetes-preserve-unknown-fields``; at the root of a resource (and of an
  ``x-kubernetes-embedded-resource``) ``apiVersion``, ``kind`` and ``metadata`` are kept, and
  ``metadata`` is pruned against ``ObjectMeta``;
- **defaulting** first removes ``null`` values of non-nullable fields that have no default,
  then fills absent fields (and non-nullable ``null`` ones) with a copy of their ``default``,
  nested defaults included;
- **validation** reports every problem with kube-openapi's words (``spec.x in body must be of
  type integer: "string"``), including ``x-kubernetes-int-or-string`` and the uniqueness of
  ``x-kubernetes-list-type: set`` and ``map`` lists.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from kaito.apimachinery._errors import (
    FieldError,
    duplicate,
    go_float,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
    type_invalid,
    unknown_field,
)
from kaito.apimachinery._objectmeta import (
    OBJECT_META,
    object_meta_type_error,
    validate_object_meta,
)
from kaito.apimachinery._syntax import dns1035_label_problems

__all__ = ("ROOT_FIELDS", "Schema", "compile_schema", "join_path", "json_type")

ROOT_FIELDS: Final = ("apiVersion", "kind", "metadata")
_MISSING: Final = object()
_MAX_JSON_INTEGER: Final = float(2**53 - 1)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_DATE_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?$"
)
_PATH_TOKEN: Final = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def json_type(value: object) -> str:
    """The JSON type of a decoded value as kube-openapi names it (``integer`` vs ``number``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if _INT64_MIN <= value <= _INT64_MAX else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def join_path(path: str, key: str) -> str:
    """``spec`` + ``x`` -> ``spec.x`` (kube-openapi joins every name with a dot)."""
    return f"{path}.{key}" if path else key


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else go_float(float(value))


class Schema:
    """One compiled schema node; its children are compiled with it."""

    __slots__ = (
        "additional",
        "all_of",
        "any_of",
        "default",
        "defaulted",
        "description",
        "embedded",
        "enum",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "int_or_string",
        "items",
        "list_type",
        "map_keys",
        "map_type",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "one_of",
        "pattern",
        "preserve_unknown",
        "properties",
        "raw",
        "required",
        "type",
    )

    def __init__(self, raw: Mapping[str, Any], *, lenient: bool = False) -> None:
        self.raw = raw
        self.type: str | None = raw.get("type")
        self.nullable = lenient or bool(raw.get("nullable"))
        self.description: str = raw.get("description", "")
        self.format: str = raw.get("format", "")
        props = raw.get("properties")
        self.properties: dict[str, Schema] | None = (
            {k: Schema(v, lenient=lenient) for k, v in props.items()}
            if isinstance(props, dict)
            else None
        )
        additional = raw.get("additionalProperties")
        self.additional: Schema | None = (
            Schema(additional, lenient=lenient) if isinstance(additional, dict) else None
        )
        items = raw.get("items")
        self.items: Schema | None = (
            Schema(items, lenient=lenient) if isinstance(items, dict) else None
        )
        self.preserve_unknown = (
            bool(raw.get("x-kubernetes-preserve-unknown-fields")) or additional is True
        )
        self.int_or_string = bool(raw.get("x-kubernetes-int-or-string"))
        self.embedded = bool(raw.get("x-kubernetes-embedded-resource"))
        self.default: Any = raw.get("default", _MISSING)
        self.defaulted: tuple[tuple[str, Schema], ...] = tuple(
            (k, s) for k, s in (self.properties or {}).items() if s.default is not _MISSING
        )
        self.required: tuple[str, ...] = tuple(raw.get("required") or ())
        enum = raw.get("enum")
        self.enum: list[Any] | None = list(enum) if isinstance(enum, list) else None
        pattern = raw.get("pattern")
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else None
        self.minimum: float | None = raw.get("minimum")
        self.maximum: float | None = raw.get("maximum")
        self.exclusive_minimum = bool(raw.get("exclusiveMinimum"))
        self.exclusive_maximum = bool(raw.get("exclusiveMaximum"))
        self.multiple_of: float | None = raw.get("multipleOf")
        self.min_length: int | None = raw.get("minLength")
        self.max_length: int | None = raw.get("maxLength")
        self.min_items: int | None = raw.get("minItems")
        self.max_items: int | None = raw.get("maxItems")
        self.min_properties: int | None = raw.get("minProperties")
        self.max_properties: int | None = raw.get("maxProperties")
        self.list_type: str = raw.get("x-kubernetes-list-type", "")
        self.map_keys: tuple[str, ...] = tuple(raw.get("x-kubernetes-list-map-keys") or ())
        self.map_type: str = raw.get("x-kubernetes-map-type", "")
        self.all_of = [Schema(s) for s in raw.get("allOf") or ()]
        self.any_of = [Schema(s) for s in raw.get("anyOf") or ()]
        self.one_of = [Schema(s) for s in raw.get("oneOf") or ()]
        not_ = raw.get("not")
        self.not_: Schema | None = Schema(not_) if isinstance(not_, dict) else None

    # ---------------------------------------------------------------- navigation

    def child(self, key: str) -> Schema | None:
        """The schema of property ``key`` of an object (``additionalProperties`` otherwise)."""
        if self.properties is not None and key in self.properties:
            return self.properties[key]
        return self.additional

    def at(self, path: list[str]) -> Schema | None:
        """The schema at a list of property names (arrays step into ``items``)."""
        node: Schema | None = self
        for part in path:
            if node is None:
                return None
            if node.items is not None and node.type == "array":
                node = node.items
            node = node.child(part)
        return node

    def known_fields(self, path: str) -> tuple[str, ...]:
        """The properties declared where the field at ``path`` would live (for spelling hints)."""
        node: Schema | None = self
        tokens = _PATH_TOKEN.findall(path)
        for index, name in tokens[:-1]:
            if node is None:
                return ()
            if name == "metadata" and node is self:
                node = _object_meta()
            else:
                node = node.items if index else node.child(name)
        if node is None or node.properties is None:
            return ()
        return tuple(node.properties)

    # ---------------------------------------------------------------- pruning

    def prune(self, value: Any, path: str, unknown: list[str], *, root: bool = False) -> None:
        """Drop fields this schema does not declare, in place, recording their paths."""
        if isinstance(value, dict):
            resource_root = root or self.embedded
            props = self.properties
            for key in list(value):
                if resource_root and key in ROOT_FIELDS:
                    if key == "metadata" and isinstance(value[key], dict):
                        _object_meta().prune(value[key], join_path(path, key), unknown)
                    continue
                sub = props.get(key) if props is not None else None
                if sub is None:
                    sub = self.additional
                if sub is None:
                    if not self.preserve_unknown:
                        del value[key]
                        unknown.append(join_path(path, key))
                    continue
                if isinstance(value[key], dict | list):
                    sub.prune(value[key], join_path(path, key), unknown)
        elif isinstance(value, list) and self.items is not None:
            items = self.items
            for i, item in enumerate(value):
                if isinstance(item, dict | list):
                    items.prune(item, f"{path}[{i}]", unknown)

    def unknown_field_errors(self, unknown: list[str]) -> list[FieldError]:
        """One ``Unknown field`` error per pruned path, with a spelling hint where one fits."""
        errors = []
        for path in unknown:
            known = self.known_fields(path)
            tokens = _PATH_TOKEN.findall(path)  # none for a key of dots only, such as "..."
            name = tokens[-1][1] if tokens else ""
            close = difflib.get_close_matches(name, known, n=1) if name else []
            hint = f'did you mean "{close[0]}"? ' if close else ""
            fix = f"{hint}remove it or fix its spelling"
            if known:
                fix += " (known fields here: " + ", ".join(known) + ")"
            errors.append(unknown_field(path, "field not declared in the schema", fix=fix))
        return errors

    # ---------------------------------------------------------------- defaulting

    def apply_defaults(self, value: Any) -> None:
        """Default ``value`` in place (apiextensions' ``PruneNonNullableNullsWithoutDefaults``,
        then ``Default``)."""
        if isinstance(value, dict):
            if None in value.values():
                for key in [k for k, v in value.items() if v is None]:
                    sub = self.child(key)
                    if sub is not None and not sub.nullable:
                        if sub.default is _MISSING:
                            del value[key]
                        else:
                            value[key] = copy.deepcopy(sub.default)
            for key, sub in self.defaulted:
                if key not in value:
                    value[key] = copy.deepcopy(sub.default)
            props = self.properties
            additional = self.additional
            for key, item in value.items():
                if not isinstance(item, dict | list):
                    continue
                sub = props.get(key) if props is not None else None
                if sub is None:
                    sub = additional
                if sub is not None:
                    sub.apply_defaults(item)
        elif isinstance(value, list) and self.items is not None:
            items = self.items
            for i, item in enumerate(value):
                current = item
                if current is None and not items.nullable and items.default is not _MISSING:
                    value[i] = current = copy.deepcopy(items.default)
                if isinstance(current, dict | list):
                    items.apply_defaults(current)

    # ---------------------------------------------------------------- validation

    def validate(self, value: Any, path: str, *, root: bool = False) -> list[FieldError]:
        """Check ``value`` against this schema; an empty list means valid."""
        errors: list[FieldError] = []
        self._validate(value, path, errors, root)
        return errors

    def _type_ok(self, value: Any) -> bool:
        if self.int_or_string:
            return isinstance(value, str) or _is_integer(value)
        kind = self.type
        if kind is None:
            return True
        if kind == "object":
            return isinstance(value, dict)
        if kind == "array":
            return isinstance(value, list)
        if kind == "string":
            return isinstance(value, str)
        if kind == "boolean":
            return isinstance(value, bool)
        if kind == "integer":
            return _is_integer(value)
        if kind == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        return True

    def _validate(self, value: Any, path: str, errors: list[FieldError], root: bool) -> None:
        if value is None:
            if not self.nullable and (self.type is not None or self.int_or_string):
                expected = "integer,string" if self.int_or_string else self.type
                errors.append(
                    type_invalid(path, "null", f'{path} in body must be of type {expected}: "null"')
                )
            return
        if not self._type_ok(value):
            expected = "integer,string" if self.int_or_string else self.type
            kind = json_type(value)
            errors.append(
                type_invalid(path, kind, f'{path} in body must be of type {expected}: "{kind}"')
            )
            return
        if self.enum is not None and value not in self.enum:
            errors.append(not_supported(path, value, self.enum))
        if isinstance(value, str):
            self._validate_string(value, path, errors)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._validate_number(value, path, errors)
        elif isinstance(value, list):
            self._validate_array(value, path, errors)
        elif isinstance(value, dict):
            self._validate_object(value, path, errors, root)
        for sub in self.all_of:
            sub._validate(value, path, errors, False)
        if self.any_of:
            attempts = [sub.validate(value, path) for sub in self.any_of]
            if all(attempts):
                errors.append(invalid(path, value, "must validate at least one schema (anyOf)"))
                errors.extend(attempts[0])
        if self.one_of:
            passing = sum(1 for sub in self.one_of if not sub.validate(value, path))
            if passing != 1:
                errors.append(invalid(path, value, "must validate one and only one schema (oneOf)"))
        if self.not_ is not None and not self.not_.validate(value, path):
            errors.append(invalid(path, value, "must not validate the schema (not)"))

    def _validate_string(self, value: str, path: str, errors: list[FieldError]) -> None:
        if self.max_length is not None and len(value) > self.max_length:
            errors.append(too_long(path, self.max_length))
        if self.min_length is not None and len(value) < self.min_length:
            errors.append(
                invalid(
                    path, value, f"{path} in body should be at least {self.min_length} chars long"
                )
            )
        if self.pattern is not None and not self.pattern.search(value):
            errors.append(
                invalid(path, value, f"{path} in body should match '{self.pattern.pattern}'")
            )
        if self.format == "date-time" and not _DATE_TIME.match(value):
            errors.append(
                type_invalid(path, value, f'{path} in body must be of type date-time: "{value}"')
            )

    def _validate_number(self, value: float, path: str, errors: list[FieldError]) -> None:
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                errors.append(
                    invalid(
                        path, value, f"{path} in body should be greater than {_num(self.minimum)}"
                    )
                )
            elif value < self.minimum:
                errors.append(
                    invalid(
                        path,
                        value,
                        f"{path} in body should be greater than or equal to {_num(self.minimum)}",
                    )
                )
        if self.maximum is not None:
            if self.exclusive_maximum and value >= self.maximum:
                errors.append(
                    invalid(path, value, f"{path} in body should be less than {_num(self.maximum)}")
                )
            elif value > self.maximum:
                errors.append(
                    invalid(
                        path,
                        value,
                        f"{path} in body should be less than or equal to {_num(self.maximum)}",
                    )
                )
        if self.multiple_of:
            ratio = value / self.multiple_of
            if not math.isclose(ratio, round(ratio)):
                errors.append(
                    invalid(
                        path,
                        value,
                        f"{path} in body should be a multiple of {_num(self.multiple_of)}",
                    )
                )

    def _validate_array(self, value: list[Any], path: str, errors: list[FieldError]) -> None:
        if self.max_items is not None and len(value) > self.max_items:
            errors.append(too_many(path, len(value), self.max_items))
        if self.min_items is not None and len(value) < self.min_items:
            errors.append(
                invalid(
                    path, len(value), f"{path} in body should have at least {self.min_items} items"
                )
            )
        if self.items is not None:
            items = self.items
            for i, item in enumerate(value):
                items._validate(item, f"{path}[{i}]", errors, False)
        if self.list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    errors.append(duplicate(f"{path}[{i}]", item))
                seen.append(item)
        elif self.list_type == "map" and self.map_keys:
            keys: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = tuple(_freeze(item.get(k)) for k in self.map_keys)
                if key in keys:
                    errors.append(
                        duplicate(f"{path}[{i}]", {k: item.get(k) for k in self.map_keys})
                    )
                keys.add(key)

    def _validate_object(
        self, value: dict[str, Any], path: str, errors: list[FieldError], root: bool
    ) -> None:
        for key in self.required:
            if key not in value:
                errors.append(required(join_path(path, key)))
        if self.max_properties is not None and len(value) > self.max_properties:
            errors.append(too_many(path, len(value), self.max_properties))
        if self.min_properties is not None and len(value) < self.min_properties:
            errors.append(
                invalid(
                    path,
                    len(value),
                    f"{path} in body should have at least {self.min_properties} properties",
                )
            )
        if self.embedded and not root:
            errors.extend(_embedded_resource_errors(value, path))
        props = self.properties
        additional = self.additional
        resource_root = root or self.embedded
        for key, item in value.items():
            if resource_root and key in ROOT_FIELDS:
                continue
            sub = props.get(key) if props is not None else None
            if sub is None:
                sub = additional
            if sub is not None:
                sub._validate(item, join_path(path, key), errors, False)


def _embedded_resource_errors(value: dict[str, Any], path: str) -> list[FieldError]:
    """An ``x-kubernetes-embedded-resource`` needs ``apiVersion`` and ``kind``; its ``metadata``
    is validated as an object's (apiextensions' ``validateEmbeddedResource``)."""
    errors: list[FieldError] = []
    for key in ("apiVersion", "kind"):
        where = join_path(path, key)
        if key not in value:
            errors.append(required(where, "must not be empty"))
        elif not isinstance(value[key], str):
            errors.append(invalid(where, value[key], "must be a string"))
        elif not value[key]:
            errors.append(invalid(where, value[key], "must not be empty"))
    kind = value.get("kind")
    if isinstance(kind, str) and kind:
        problems = dns1035_label_problems(kind.lower())
        if problems:
            detail = "may have mixed case, but should otherwise match: " + ",".join(problems)
            errors.append(invalid(join_path(path, "kind"), kind, detail))
    meta = value.get("metadata")
    if "metadata" in value:
        where = join_path(path, "metadata")
        problem = object_meta_type_error(meta, where)
        if problem is not None:
            errors.append(problem)
        elif isinstance(meta, dict):
            named = meta if meta.get("name") else {**meta, "name": "fakename"}
            errors.extend(
                validate_object_meta(
                    named,
                    namespaced=bool(meta.get("namespace")),
                    name_validator=lambda _: [],
                    path=where,
                )
            )
    return errors


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_JSON_INTEGER


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_OBJECT_META_SCHEMA: list[Schema] = []


def _object_meta() -> Schema:
    """``ObjectMeta``'s compiled schema (built on first use)."""
    if not _OBJECT_META_SCHEMA:
        _OBJECT_META_SCHEMA.append(Schema(OBJECT_META, lenient=True))
    return _OBJECT_META_SCHEMA[0]


def compile_schema(raw: Mapping[str, Any], *, lenient: bool = False) -> Schema:
    """Compile an OpenAPI v3 (structural) schema.

    ``lenient`` accepts ``null`` everywhere, as built-in kinds do (their Go types decode ``null``
    as the zero value); custom resources honour ``nullable``.
    """
    return Schema(raw, lenient=lenient)
