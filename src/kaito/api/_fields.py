"""The one field helper for API types: wire name, OpenAPI facts and docs travel with the attribute.

API layer. Every attribute of an API type is declared with :func:`field`; the cattrs converter reads
the wire name from it and the CRD generator reads the schema facts, so names cannot drift between
the Python types, the JSON on the wire and the CRD.
"""

from __future__ import annotations

import re
import types
from typing import Any, Final, Union, get_args, get_origin, get_type_hints

import attrs

__all__ = ("SCHEMA_KEY", "FieldInfo", "camel", "field", "field_info", "fix_at", "wire_name")

SCHEMA_KEY: Final = "kaito.api"


@attrs.frozen
class FieldInfo:
    """Schema facts about one attribute, stored in ``attrs`` metadata under :data:`SCHEMA_KEY`."""

    description: str
    required: bool = False
    wire: str | None = None
    enum: tuple[str, ...] | None = None
    #: The structural-schema default the API server applies (``default:`` in the CRD).
    default: Any = None
    #: Schemaless: kept verbatim (``x-kubernetes-preserve-unknown-fields``), e.g. a PodTemplateSpec.
    schemaless: bool = False
    format: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_items: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    list_type: str | None = None
    map_type: str | None = None
    #: Shown by ``kubectl explain`` but marked deprecated.
    deprecated: bool = False
    #: What to do when the schema refuses a value here (``kaito validate`` and the webhook add it
    #: to the API server's message; it is not part of the CRD).
    fix: str | None = None


def camel(name: str) -> str:
    """``instance_type`` -> ``instanceType``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def field(
    description: str,
    *,
    required: bool = False,
    wire: str | None = None,
    enum: tuple[str, ...] | None = None,
    default: Any = None,
    schemaless: bool = False,
    format: str | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    max_items: int | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    list_type: str | None = None,
    map_type: str | None = None,
    deprecated: bool = False,
    fix: str | None = None,
    python_default: Any = attrs.NOTHING,
) -> Any:
    """Declare an API attribute.

    Optional attributes default to ``None`` in Python (and are omitted on the wire when ``None``);
    ``default`` is the CRD default the API server applies, not a Python default. Required
    attributes have no Python default unless ``python_default`` gives one (used for ``kind`` and
    ``apiVersion``).
    """
    info = FieldInfo(
        description=description,
        required=required,
        wire=wire,
        enum=enum,
        default=default,
        schemaless=schemaless,
        format=format,
        minimum=minimum,
        maximum=maximum,
        max_items=max_items,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        list_type=list_type,
        map_type=map_type,
        deprecated=deprecated,
        fix=fix,
    )
    if python_default is not attrs.NOTHING:
        py_default = python_default
    else:
        py_default = attrs.NOTHING if required else None
    return attrs.field(default=py_default, kw_only=True, metadata={SCHEMA_KEY: info})


def field_info(attribute: attrs.Attribute[Any]) -> FieldInfo:
    """Return the schema facts of an attribute declared with :func:`field`."""
    info = attribute.metadata.get(SCHEMA_KEY)
    if not isinstance(info, FieldInfo):
        raise TypeError(
            f"attribute {attribute.name!r} was not declared with kaito.api._fields.field"
        )
    return info


def wire_name(attribute: attrs.Attribute[Any]) -> str:
    """The JSON key of an attribute: its explicit wire name or the camelCase of its name."""
    info = attribute.metadata.get(SCHEMA_KEY)
    if isinstance(info, FieldInfo) and info.wire:
        return info.wire
    return camel(attribute.name)


_PATH_TOKEN: Final = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def fix_at(cls: type, path: str) -> str | None:
    """The ``fix`` declared for the field at wire ``path`` of ``cls`` (``a.b[0].c``), if any."""
    tp: Any = cls
    info: FieldInfo | None = None
    for index, name in _PATH_TOKEN.findall(path):
        tp = _strip_optional(tp)
        origin = get_origin(tp)
        if index or (origin is dict and name):
            if origin not in (tuple, dict):
                return None
            tp = get_args(tp)[0 if origin is tuple else 1]
            continue
        if not attrs.has(tp):
            return None
        by_wire = {wire_name(a): a for a in attrs.fields(tp)}
        attribute = by_wire.get(name)
        if attribute is None:
            return None
        info = attribute.metadata.get(SCHEMA_KEY)
        tp = get_type_hints(tp)[attribute.name]
    return info.fix if isinstance(info, FieldInfo) else None
