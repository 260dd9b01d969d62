"""OpenAPI v3 structural schemas generated from the API types.

API layer (pure functions). The same schema feeds the CRD (``kaito crds``) and, compiled by
``kaito.apimachinery``, the structural defaults (``count: 1``, ``accessMode: public``...), pruning,
validation and version conversion, exactly as the API server applies them.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin, get_type_hints

import attrs

from kaito.api._fields import FieldInfo, field_info, wire_name
from kaito.api._meta import ObjectMeta

__all__ = ("openapi_schema",)

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
}
_ROOT_DOCS = {
    "apiVersion": (
        "APIVersion defines the versioned schema of this representation of an object. Servers "
        "convert recognized schemas to the latest internal value."
    ),
    "kind": "Kind is the REST resource this object represents, in CamelCase.",
}


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _type_schema(tp: Any, info: FieldInfo | None) -> dict[str, Any]:
    tp = _strip_optional(tp)
    if info is not None and info.schemaless:
        return {"x-kubernetes-preserve-unknown-fields": True}
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is ObjectMeta:
        return {"type": "object"}
    origin = get_origin(tp)
    if origin is tuple:
        (item, _) = get_args(tp)
        return {"type": "array", "items": _type_schema(item, None)}
    if origin is dict:
        (_, value) = get_args(tp)
        if value is Any:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"type": "object", "additionalProperties": _type_schema(value, None)}
    if attrs.has(tp):
        return openapi_schema(tp, root=False)
    raise TypeError(f"no OpenAPI schema for type {tp!r}")


def _field_schema(attribute: attrs.Attribute[Any], tp: Any) -> dict[str, Any]:
    info = field_info(attribute)
    schema = _type_schema(tp, info)
    description = info.description
    if info.deprecated:
        description = "Deprecated: " + description
    out: dict[str, Any] = {"description": description}
    out.update({k: v for k, v in schema.items() if k != "description"})
    if info.default is not None:
        out["default"] = info.default
    if info.enum:
        out["enum"] = list(info.enum)
    for key, value in (
        ("format", info.format),
        ("minimum", info.minimum),
        ("maximum", info.maximum),
        ("maxItems", info.max_items),
        ("minLength", info.min_length),
        ("maxLength", info.max_length),
        ("pattern", info.pattern),
        ("x-kubernetes-list-type", info.list_type),
        ("x-kubernetes-map-type", info.map_type),
    ):
        if value is not None:
            out[key] = value
    return out


def openapi_schema(cls: type, *, root: bool = True) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of an API type (``openAPIV3Schema`` for a root kind)."""
    hints = get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for attribute in attrs.fields(cls):
        name = wire_name(attribute)
        if root and name in _ROOT_DOCS:
            properties[name] = {"description": _ROOT_DOCS[name], "type": "string"}
            continue
        properties[name] = _field_schema(attribute, hints[attribute.name])
        if field_info(attribute).required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    doc = (cls.__doc__ or "").strip().splitlines()
    if doc:
        schema = {"description": doc[0], **schema}
    if required:
        schema["required"] = required
    return schema
