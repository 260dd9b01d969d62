"""A tiny vocabulary for writing the built-in kinds' OpenAPI v3 schemas by hand."""

from __future__ import annotations

from typing import Any

__all__ = (
    "ANY",
    "BOOL",
    "INT",
    "INT64",
    "INT_OR_STRING",
    "MAP_QUANTITY",
    "MAP_STRING",
    "NUMBER",
    "QUANTITY",
    "STRING",
    "TIME",
    "array",
    "atomic_array",
    "map_array",
    "obj",
    "set_array",
)

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer", "format": "int32"}
INT64: Schema = {"type": "integer", "format": "int64"}
NUMBER: Schema = {"type": "number", "format": "double"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
INT_OR_STRING: Schema = {"x-kubernetes-int-or-string": True, "format": "int-or-string"}
QUANTITY: Schema = {"x-kubernetes-int-or-string": True, "format": "quantity"}
MAP_STRING: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
MAP_QUANTITY: Schema = {"type": "object", "additionalProperties": QUANTITY}
ANY: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def obj(
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    description: str = "",
    open: bool = False,
) -> Schema:
    """An object with declared properties; ``open`` keeps undeclared fields (not modelled here)."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    if open:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def array(items: Schema) -> Schema:
    """A list replaced as a whole by strategic merge patch."""
    return {"type": "array", "items": items}


def atomic_array(items: Schema) -> Schema:
    """An ``x-kubernetes-list-type: atomic`` list."""
    return {"type": "array", "items": items, "x-kubernetes-list-type": "atomic"}


def set_array(items: Schema) -> Schema:
    """A list of scalars merged as a set (``patchStrategy: merge``)."""
    return {
        "type": "array",
        "items": items,
        "x-kubernetes-list-type": "set",
        "x-kubernetes-patch-strategy": "merge",
    }


def map_array(items: Schema, key: str, *keys: str, patch: bool = True) -> Schema:
    """A list of objects merged by ``key`` (``patchMergeKey``), also a list-map for apply."""
    schema: Schema = {
        "type": "array",
        "items": items,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": [key, *keys],
    }
    if patch:
        schema["x-kubernetes-patch-merge-key"] = key
        schema["x-kubernetes-patch-strategy"] = "merge"
    return schema
