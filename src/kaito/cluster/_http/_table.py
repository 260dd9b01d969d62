"""``meta.k8s.io/v1 Table`` responses: printer columns of CRDs and the built-in printers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from kaito.cluster._builtins import PRINTERS, human_duration, parse_time
from kaito.cluster._json import Obj
from kaito.cluster._jsonpath import evaluate
from kaito.cluster._resource_types import PrinterColumn, ResourceType

__all__ = ("metadata_only", "table")

_NAME_COLUMN = PrinterColumn(
    "Name",
    "string",
    format="name",
    description=(
        "Name must be unique within a namespace. Is required when creating resources, "
        "although some resources may allow a client to request the generation of an "
        "appropriate name automatically. Name is primarily intended for creation idempotence "
        "and configuration definition. Cannot be updated."
    ),
)
_DEFAULT_COLUMNS = (
    _NAME_COLUMN,
    PrinterColumn(
        "Age",
        "string",
        description=(
            "CreationTimestamp is a timestamp representing the server time when this "
            "object was created."
        ),
    ),
)


def _definition(column: PrinterColumn) -> Obj:
    return {
        "name": column.name,
        "type": column.type,
        "format": column.format,
        "description": column.description,
        "priority": column.priority,
    }


def _cell(column: PrinterColumn, obj: Obj, now: dt.datetime) -> Any:
    values = evaluate(column.json_path, obj) if column.json_path else []
    if not values:
        return None
    value = values[0]
    if column.type == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            from kaito.cluster._json import dumps

            return dumps(value).decode()
        return str(value) if not isinstance(value, str) else value
    if column.type == "integer":
        return (
            int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
    if column.type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column.type == "boolean":
        return value if isinstance(value, bool) else None
    if column.type == "date":
        moment = parse_time(value)
        return None if moment is None else human_duration((now - moment).total_seconds())
    return value


def metadata_only(obj: Obj) -> Obj:
    """The ``PartialObjectMetadata`` of an object."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def _row_object(obj: Obj, include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return metadata_only(obj)


def table(
    rt: ResourceType,
    objects: Iterable[Obj],
    *,
    now: dt.datetime,
    rv: str,
    include: str = "Metadata",
    continue_token: str = "",
    remaining: int | None = None,
    headers: bool = True,
) -> Obj:
    """Render objects as a Table (``include``: ``Object``, ``Metadata`` or ``None``)."""
    rows = []
    if rt.printer_columns is not None:
        columns = (_NAME_COLUMN, *rt.printer_columns)
        for obj in objects:
            cells = [(obj.get("metadata") or {}).get("name", "")] + [
                _cell(c, obj, now) for c in rt.printer_columns
            ]
            rows.append({"cells": cells, "object": _row_object(obj, include)})
    else:
        printer = PRINTERS.get((rt.group if rt.group != "events.k8s.io" else "", rt.kind))
        if printer is None:
            columns = _DEFAULT_COLUMNS
            for obj in objects:
                created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
                age = (
                    "<unknown>"
                    if created is None
                    else human_duration((now - created).total_seconds())
                )
                rows.append(
                    {
                        "cells": [(obj.get("metadata") or {}).get("name", ""), age],
                        "object": _row_object(obj, include),
                    }
                )
        else:
            columns, row = printer
            for obj in objects:
                rows.append({"cells": row(obj, now), "object": _row_object(obj, include)})
    metadata: Obj = {"resourceVersion": rv}
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    result: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if headers:
        result["columnDefinitions"] = [_definition(c) for c in columns]
    result["rows"] = rows
    return result
