"""Structural OpenAPI schemas (CRD ``openAPIV3Schema`` and the built-in kinds): compile once, then
prune unknown fields, apply defaults and validate with kube-apiserver's error wording."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

from kaito.cluster._errors import FieldError

__all__ = ("OBJECT_META_FIELDS", "Schema", "compile_schema")

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
_MISSING = object()
_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class Schema:
    """One compiled schema node; children are compiled lazily-free (all at once) for speed."""

    __slots__ = (
        "additional",
        "all_of",
        "any_of",
        "default",
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
        "unique_items",
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
        self.unique_items = bool(raw.get("uniqueItems"))
        self.list_type: str = raw.get("x-kubernetes-list-type", "")
        self.map_keys: tuple[str, ...] = tuple(raw.get("x-kubernetes-list-map-keys") or ())
        self.all_of = [Schema(s) for s in raw.get("allOf") or ()]
        self.any_of = [Schema(s) for s in raw.get("anyOf") or ()]
        self.one_of = [Schema(s) for s in raw.get("oneOf") or ()]
        not_ = raw.get("not")
        self.not_: Schema | None = Schema(not_) if isinstance(not_, dict) else None

    # ---------------------------------------------------------------- navigation

    def child(self, key: str) -> Schema | None:
        """The schema of property ``key`` of an object."""
        if self.properties is not None and key in self.properties:
            return self.properties[key]
        return self.additional

    def at(self, path: list[str]) -> Schema | None:
        """The schema at a dotted path of property names (arrays step into ``items``)."""
        node: Schema | None = self
        for part in path:
            if node is None:
                return None
            if node.items is not None and node.type == "array":
                node = node.items
            node = node.child(part)
        return node

    # ---------------------------------------------------------------- pruning

    def prune(self, value: Any, path: str, unknown: list[str], *, root: bool = False) -> None:
        """Drop fields this schema does not declare, in place, recording their paths."""
        if isinstance(value, dict):
            if root or self.embedded:
                meta = value.get("metadata")
                if isinstance(meta, dict):
                    for key in [k for k in meta if k not in OBJECT_META_FIELDS]:
                        del meta[key]
                        unknown.append(_join(_join(path, "metadata"), key))
            props = self.properties
            for key in list(value):
                if (root or self.embedded) and key in _ROOT_FIELDS:
                    continue
                sub = props.get(key) if props is not None else None
                if sub is None:
                    sub = self.additional
                if sub is None:
                    if not self.preserve_unknown:
                        del value[key]
                        unknown.append(_join(path, key))
                    continue
                sub.prune(value[key], _join(path, key), unknown)
        elif isinstance(value, list) and self.items is not None:
            for i, item in enumerate(value):
                self.items.prune(item, f"{path}[{i}]", unknown)

    # ---------------------------------------------------------------- defaulting

    def apply_defaults(self, value: Any) -> None:
        """Fill in missing fields that declare a ``default``, in place (also drops non-nullable
        ``null`` values, as kube-apiserver does before defaulting)."""
        if isinstance(value, dict):
            props = self.properties
            if props is not None:
                for key, sub in props.items():
                    current = value.get(key, _MISSING)
                    if current is None and not sub.nullable:
                        del value[key]
                        current = _MISSING
                    if current is _MISSING:
                        if sub.default is not _MISSING:
                            value[key] = copy.deepcopy(sub.default)
                            sub.apply_defaults(value[key])
                    else:
                        sub.apply_defaults(current)
            if self.additional is not None:
                for key, item in value.items():
                    if props is None or key not in props:
                        self.additional.apply_defaults(item)
        elif isinstance(value, list) and self.items is not None:
            for item in value:
                self.items.apply_defaults(item)

    # ---------------------------------------------------------------- validation

    def validate(self, value: Any, path: str, *, root: bool = False) -> list[FieldError]:
        """Check ``value`` against this schema; an empty list means valid."""
        errors: list[FieldError] = []
        self._validate(value, path, errors, root)
        return errors

    def _type_ok(self, value: Any) -> bool:
        if self.int_or_string:
            return (isinstance(value, int | str) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer()
            )
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
            return (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer()
            )
        if kind == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        return True

    def _validate(self, value: Any, path: str, errors: list[FieldError], root: bool) -> None:
        shown = path or "<root>"
        if value is None:
            if not self.nullable and self.type is not None:
                errors.append(
                    FieldError(
                        "Invalid",
                        shown,
                        None,
                        f'{shown} in body must be of type {self.type}: "null"',
                    )
                )
            return
        if not self._type_ok(value):
            expected = "integer or string" if self.int_or_string else self.type
            errors.append(
                FieldError(
                    "Invalid",
                    shown,
                    _json_type(value),
                    f'{shown} in body must be of type {expected}: "{_json_type(value)}"',
                )
            )
            return
        if self.enum is not None and value not in self.enum:
            errors.append(
                FieldError("NotSupported", shown, value, supported=tuple(str(e) for e in self.enum))
            )
        if isinstance(value, str):
            self._validate_string(value, shown, errors)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._validate_number(value, shown, errors)
        elif isinstance(value, list):
            self._validate_array(value, path, shown, errors)
        elif isinstance(value, dict):
            self._validate_object(value, path, shown, errors, root)
        for sub in self.all_of:
            sub._validate(value, path, errors, False)
        if self.any_of:
            attempts = [sub.validate(value, path) for sub in self.any_of]
            if all(attempts):
                errors.append(
                    FieldError("Invalid", shown, value, "must validate at least one schema (anyOf)")
                )
                errors.extend(attempts[0])
        if self.one_of:
            passing = sum(1 for sub in self.one_of if not sub.validate(value, path))
            if passing != 1:
                errors.append(
                    FieldError(
                        "Invalid", shown, value, "must validate one and only one schema (oneOf)"
                    )
                )
        if self.not_ is not None and not self.not_.validate(value, path):
            errors.append(FieldError("Invalid", shown, value, "must not validate the schema (not)"))

    def _validate_string(self, value: str, shown: str, errors: list[FieldError]) -> None:
        if self.max_length is not None and len(value) > self.max_length:
            errors.append(
                FieldError("TooLong", shown, value, f"may not be more than {self.max_length} bytes")
            )
        if self.min_length is not None and len(value) < self.min_length:
            errors.append(
                FieldError(
                    "Invalid",
                    shown,
                    value,
                    f"{shown} in body should be at least {self.min_length} chars long",
                )
            )
        if self.pattern is not None and not self.pattern.search(value):
            errors.append(
                FieldError(
                    "Invalid",
                    shown,
                    value,
                    f"{shown} in body should match '{self.pattern.pattern}'",
                )
            )

    def _validate_number(self, value: float, shown: str, errors: list[FieldError]) -> None:
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                errors.append(
                    FieldError(
                        "Invalid",
                        shown,
                        value,
                        f"{shown} in body should be greater than {_num(self.minimum)}",
                    )
                )
            elif value < self.minimum:
                errors.append(
                    FieldError(
                        "Invalid",
                        shown,
                        value,
                        f"{shown} in body should be greater than or equal to {_num(self.minimum)}",
                    )
                )
        if self.maximum is not None:
            if self.exclusive_maximum and value >= self.maximum:
                errors.append(
                    FieldError(
                        "Invalid",
                        shown,
                        value,
                        f"{shown} in body should be less than {_num(self.maximum)}",
                    )
                )
            elif value > self.maximum:
                errors.append(
                    FieldError(
                        "Invalid",
                        shown,
                        value,
                        f"{shown} in body should be less than or equal to {_num(self.maximum)}",
                    )
                )
        if self.multiple_of:
            ratio = value / self.multiple_of
            if not math.isclose(ratio, round(ratio)):
                errors.append(
                    FieldError(
                        "Invalid",
                        shown,
                        value,
                        f"{shown} in body should be a multiple of {_num(self.multiple_of)}",
                    )
                )

    def _validate_array(
        self, value: list[Any], path: str, shown: str, errors: list[FieldError]
    ) -> None:
        if self.max_items is not None and len(value) > self.max_items:
            errors.append(
                FieldError(
                    "TooMany", shown, len(value), f"must have at most {self.max_items} items"
                )
            )
        if self.min_items is not None and len(value) < self.min_items:
            errors.append(
                FieldError(
                    "Invalid",
                    shown,
                    len(value),
                    f"{shown} in body should have at least {self.min_items} items",
                )
            )
        if self.items is not None:
            for i, item in enumerate(value):
                self.items._validate(item, f"{path}[{i}]", errors, False)
        if self.list_type == "set" or self.unique_items:
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    errors.append(FieldError("Duplicate", f"{path}[{i}]", item))
                seen.append(item)
        elif self.list_type == "map" and self.map_keys:
            keys: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = tuple(_freeze(item.get(k)) for k in self.map_keys)
                if key in keys:
                    shown_key = {k: item.get(k) for k in self.map_keys}
                    errors.append(FieldError("Duplicate", f"{path}[{i}]", shown_key))
                keys.add(key)

    def _validate_object(
        self, value: dict[str, Any], path: str, shown: str, errors: list[FieldError], root: bool
    ) -> None:
        for key in self.required:
            if key not in value:
                errors.append(FieldError("Required", _join(path, key)))
        if self.max_properties is not None and len(value) > self.max_properties:
            errors.append(
                FieldError(
                    "TooMany", shown, len(value), f"must have at most {self.max_properties} items"
                )
            )
        if self.min_properties is not None and len(value) < self.min_properties:
            errors.append(
                FieldError(
                    "Invalid",
                    shown,
                    len(value),
                    f"{shown} in body should have at least {self.min_properties} properties",
                )
            )
        props = self.properties
        for key, item in value.items():
            if (root or self.embedded) and key in _ROOT_FIELDS:
                continue
            sub = props.get(key) if props is not None else None
            if sub is None:
                sub = self.additional
            if sub is not None:
                sub._validate(item, _join(path, key), errors, False)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def compile_schema(raw: Mapping[str, Any], *, lenient: bool = False) -> Schema:
    """Compile an OpenAPI v3 (structural) schema.

    ``lenient`` accepts ``null`` everywhere, as built-in kinds do (their Go types decode ``null`` as
    the zero value); custom resources honour ``nullable``.
    """
    return Schema(raw, lenient=lenient)
