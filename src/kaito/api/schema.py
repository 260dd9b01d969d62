"""OpenAPI v3 structural schemas generated from the API types, and what the API server does with
them: defaulting and pruning.

API layer (pure functions). The same schema feeds the CRD (``kaito crds``), the structural
defaults (``count: 1``, ``accessMode: public``...), and version conversion (fields a version does
not declare are pruned, as kube-apiserver prunes after a ``None``-strategy conversion).
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

import attrs

from kaito.api.fields import FieldInfo, field_info, wire_name
from kaito.api.meta import ObjectMeta

__all__ = ("apply_defaults", "openapi_schema", "prune")

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


def apply_defaults(data: Any, schema: Mapping[str, Any]) -> Any:
    """Return ``data`` with structural-schema defaults filled in (as kube-apiserver defaults).

    A default applies where the field is absent and its parent object exists.
    """
    if isinstance(data, dict):
        props = schema.get("properties")
        if props is not None:
            out = dict(data)
            for key, sub in props.items():
                if key not in out and "default" in sub:
                    out[key] = copy.deepcopy(sub["default"])
                if key in out:
                    out[key] = apply_defaults(out[key], sub)
            return out
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            return {k: apply_defaults(v, extra) for k, v in data.items()}
        return data
    if isinstance(data, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(item, schema["items"]) for item in data]
    return data


def prune(data: Any, schema: Mapping[str, Any], path: str = "") -> tuple[Any, list[str]]:
    """Drop fields the schema does not declare; return the pruned data and the dropped paths.

    Schemaless fields (``x-kubernetes-preserve-unknown-fields``) and root ``metadata`` are kept.
    """
    dropped: list[str] = []
    if isinstance(data, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None:
            out = {}
            for key, value in data.items():
                child = f"{path}.{key}" if path else key
                if key not in props:
                    dropped.append(child)
                    continue
                if not path and key == "metadata":
                    out[key] = value
                    continue
                out[key], sub_dropped = prune(value, props[key], child)
                dropped += sub_dropped
            return out, dropped
        if isinstance(extra, Mapping):
            out = {}
            for key, value in data.items():
                out[key], sub_dropped = prune(value, extra, f"{path}[{key}]")
                dropped += sub_dropped
            return out, dropped
        return data, dropped
    if isinstance(data, list) and isinstance(schema.get("items"), Mapping):
        out_list = []
        for i, item in enumerate(data):
            pruned, sub_dropped = prune(item, schema["items"], f"{path}[{i}]")
            out_list.append(pruned)
            dropped += sub_dropped
        return out_list, dropped
    return data, dropped
