"""Server-side apply: merge an applied configuration into the live object, remove the fields its
manager stopped applying, detect conflicts with other appliers, and record ownership in
``metadata.managedFields`` (``FieldsV1``).

Only ``Apply`` operations are tracked; ``Update`` writes do not record field ownership, so they
never cause apply conflicts (kube-apiserver would report them). Lists follow
``x-kubernetes-list-type``: ``map`` lists merge by their keys, ``set`` lists by value, everything
else is atomic.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

from kaito.cluster._schema import Schema

__all__ = (
    "ApplyConflict",
    "FieldPath",
    "apply_config",
    "decode_fields",
    "encode_fields",
    "field_set",
)

FieldPath = tuple[str, ...]


class ApplyConflict(Exception):
    """Fields of the applied configuration are owned by other appliers with different values."""

    def __init__(self, conflicts: list[tuple[str, str, str]]) -> None:
        self.conflicts = conflicts
        """``(manager, apiVersion, .dotted.path)`` triples."""
        super().__init__(f"{len(conflicts)} conflicts")


def _list_type(schema: Schema | None) -> tuple[str, tuple[str, ...]]:
    if schema is None:
        return "atomic", ()
    return schema.list_type or "atomic", schema.map_keys


def _item_key(item: Any, keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps(
        {k: item.get(k) for k in keys if k in item}, separators=(",", ":"), sort_keys=True
    )


def _is_atomic_map(schema: Schema | None) -> bool:
    return schema is not None and schema.raw.get("x-kubernetes-map-type") == "atomic"


def field_set(value: Any, schema: Schema | None, prefix: FieldPath = ()) -> set[FieldPath]:
    """The set of field paths a configuration sets (leaves, list-map items and set values)."""
    paths: set[FieldPath] = set()
    if isinstance(value, dict) and not _is_atomic_map(schema):
        if not value and prefix:
            paths.add(prefix)
        for key, item in value.items():
            if not prefix and key in ("apiVersion", "kind"):
                continue
            child = schema.child(key) if schema is not None else None
            if prefix == ("f:metadata",) and key in (
                "name",
                "namespace",
                "resourceVersion",
                "uid",
                "managedFields",
            ):
                continue
            paths |= field_set(item, child, (*prefix, f"f:{key}"))
        return paths
    if isinstance(value, list):
        kind, keys = _list_type(schema)
        items = schema.items if schema is not None else None
        if kind == "map" and keys:
            for item in value:
                if isinstance(item, dict):
                    item_path = (*prefix, _item_key(item, keys))
                    paths.add(item_path)
                    paths |= field_set(item, items, item_path)
            return paths
        if kind == "set":
            for item in value:
                paths.add((*prefix, "v:" + json.dumps(item, separators=(",", ":"))))
            return paths
    paths.add(prefix)
    return paths


def encode_fields(paths: set[FieldPath]) -> dict[str, Any]:
    """``FieldsV1`` JSON for a set of paths."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(part, {})
        if path and path[-1].startswith("k:"):
            node.setdefault(".", {})
    return root


def decode_fields(fields: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    """The paths recorded in ``FieldsV1`` JSON."""
    paths: set[FieldPath] = set()
    if not isinstance(fields, dict):
        return paths
    for part, sub in fields.items():
        if part == ".":
            paths.add(prefix)
            continue
        path = (*prefix, part)
        if not sub or part.startswith("v:"):
            paths.add(path)
        else:
            paths |= decode_fields(sub, path)
    return paths


def _merge(live: Any, applied: Any, schema: Schema | None) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict) and not _is_atomic_map(schema):
        for key, value in applied.items():
            child = schema.child(key) if schema is not None else None
            live[key] = _merge(live.get(key), value, child)
        return live
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = _list_type(schema)
        items = schema.items if schema is not None else None
        if kind == "map" and keys:
            result = list(live)
            for item in applied:
                if not isinstance(item, dict):
                    continue
                key = _item_key(item, keys)
                index = next(
                    (
                        i
                        for i, e in enumerate(result)
                        if isinstance(e, dict) and _item_key(e, keys) == key
                    ),
                    None,
                )
                if index is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[index] = _merge(result[index], item, items)
            return result
        if kind == "set":
            return list(live) + [item for item in applied if item not in live]
    return copy.deepcopy(applied)


def _value_at(obj: Any, path: FieldPath) -> Any:
    node = obj
    for part in path:
        if part.startswith("f:"):
            if not isinstance(node, dict) or part[2:] not in node:
                return _ABSENT
            node = node[part[2:]]
        elif part.startswith("k:"):
            if not isinstance(node, list):
                return _ABSENT
            wanted = json.loads(part[2:])
            node = next(
                (
                    e
                    for e in node
                    if isinstance(e, dict) and all(e.get(k) == v for k, v in wanted.items())
                ),
                _ABSENT,
            )
            if node is _ABSENT:
                return _ABSENT
        elif part.startswith("v:"):
            value = json.loads(part[2:])
            return value if isinstance(node, list) and value in node else _ABSENT
    return node


_ABSENT = object()


def _remove(obj: Any, path: FieldPath) -> None:
    if not path:
        return
    parent = _value_at(obj, path[:-1])
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        wanted = json.loads(last[2:])
        parent[:] = [
            e
            for e in parent
            if not (isinstance(e, dict) and all(e.get(k) == v for k, v in wanted.items()))
        ]
    elif last.startswith("v:") and isinstance(parent, list):
        value = json.loads(last[2:])
        parent[:] = [e for e in parent if e != value]


def _dotted(path: FieldPath) -> str:
    text = ""
    for part in path:
        if part.startswith("f:"):
            text += "." + part[2:]
        elif part.startswith("k:"):
            text += (
                "["
                + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(part[2:]).items())
                + "]"
            )
        else:
            text += "[" + part[2:] + "]"
    return text


def apply_config(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    schema: Schema | None,
    *,
    manager: str,
    api_version: str,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """Merge ``applied`` into ``live`` (a fresh copy the caller owns) for ``manager``.

    Raises:
        ApplyConflict: unless ``force``, when fields applied with a different value are owned by
            another applier.
    """
    applied_paths = field_set(applied, schema)
    base = live if live is not None else {"metadata": {}}
    meta = base.setdefault("metadata", {})
    entries = [e for e in meta.get("managedFields") or [] if isinstance(e, dict)]
    previous: set[FieldPath] = set()
    others: list[tuple[dict[str, Any], set[FieldPath]]] = []
    for entry in entries:
        owned = decode_fields(entry.get("fieldsV1"))
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous = owned
        else:
            others.append((entry, owned))
    conflicts: list[tuple[str, str, str]] = []
    if live is not None:
        for entry, owned in others:
            if entry.get("operation") != "Apply":
                continue
            clashing = [
                p
                for p in applied_paths & owned
                if not p[-1].startswith(("k:", "v:"))
                and _value_at(live, p) != _value_at(applied, p)
            ]
            if clashing and not force:
                conflicts += [
                    (str(entry.get("manager")), str(entry.get("apiVersion", "")), _dotted(p))
                    for p in sorted(clashing)
                ]
            elif clashing:
                owned.difference_update(clashing)
    if conflicts:
        raise ApplyConflict(conflicts)
    result = _merge(
        base, {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}, schema
    )
    owned_by_others = set().union(*(owned for _, owned in others)) if others else set()
    for path in sorted(previous - applied_paths - owned_by_others, key=len, reverse=True):
        if not any(p[: len(path)] == path for p in applied_paths):
            _remove(result, path)
    result["apiVersion"] = applied.get("apiVersion", result.get("apiVersion"))
    result["kind"] = applied.get("kind", result.get("kind"))
    managed = []
    for entry, owned in others:
        if owned:
            entry["fieldsV1"] = encode_fields(owned)
            managed.append(entry)
    managed.append(
        {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode_fields(applied_paths),
        }
    )
    result.setdefault("metadata", {})["managedFields"] = managed
    return cast("dict[str, Any]", result)
