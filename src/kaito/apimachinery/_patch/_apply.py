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

from kaito.apimachinery._schema import Schema

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


def _value_key(item: Any) -> str:
    return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)


def _is_atomic_map(schema: Schema | None) -> bool:
    return schema is not None and schema.map_type == "atomic"


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
                paths.add((*prefix, _value_key(item)))
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
            positions: dict[str, int] = {}
            for i, existing in enumerate(result):
                if isinstance(existing, dict):
                    positions.setdefault(_item_key(existing, keys), i)
            for item in applied:
                if not isinstance(item, dict):
                    continue
                key = _item_key(item, keys)
                index = positions.get(key)
                if index is None:
                    positions[key] = len(result)
                    result.append(copy.deepcopy(item))
                else:
                    result[index] = _merge(result[index], item, items)
            return result
        if kind == "set":
            present = {_value_key(item) for item in live}
            return list(live) + [item for item in applied if _value_key(item) not in present]
    return copy.deepcopy(applied)


_ABSENT = object()


class _Lookup:
    """Finds values at field paths; list items are indexed once per list, not scanned per path."""

    def __init__(self) -> None:
        self._indexes: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}

    def _item(self, node: list[Any], part: str) -> Any:
        wanted = json.loads(part[2:])
        if not isinstance(wanted, dict):
            return _ABSENT
        keys = tuple(sorted(wanted))
        index = self._indexes.get((id(node), keys))
        if index is None:
            index = {}
            for element in node:
                if isinstance(element, dict):
                    index.setdefault(_canonical({k: element.get(k) for k in keys}), element)
            self._indexes[(id(node), keys)] = index
        return index.get(_canonical(wanted), _ABSENT)

    def value_at(self, obj: Any, path: FieldPath) -> Any:
        node = obj
        for part in path:
            if part.startswith("f:"):
                if not isinstance(node, dict) or part[2:] not in node:
                    return _ABSENT
                node = node[part[2:]]
            elif part.startswith("k:"):
                if not isinstance(node, list):
                    return _ABSENT
                node = self._item(node, part)
                if node is _ABSENT:
                    return _ABSENT
            elif part.startswith("v:"):
                if not isinstance(node, list):
                    return _ABSENT
                present = {_value_key(e) for e in node}
                return json.loads(part[2:]) if part in present else _ABSENT
        return node


def _canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _remove_all(obj: Any, paths: list[FieldPath]) -> None:
    """Remove every path; each list is filtered once, after all its doomed items are found."""
    lookup = _Lookup()
    doomed: dict[int, tuple[list[Any], set[int], set[str]]] = {}
    for path in paths:
        if not path:
            continue
        parent = lookup.value_at(obj, path[:-1])
        last = path[-1]
        if last.startswith("f:") and isinstance(parent, dict):
            parent.pop(last[2:], None)
        elif last.startswith(("k:", "v:")) and isinstance(parent, list):
            _, items, values = doomed.setdefault(id(parent), (parent, set(), set()))
            if last.startswith("v:"):
                values.add(last)
            else:
                item = lookup.value_at(parent, (last,))
                if item is not _ABSENT:
                    items.add(id(item))
    for parent, items, values in doomed.values():
        parent[:] = [e for e in parent if id(e) not in items and _value_key(e) not in values]


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
    live_values, applied_values = _Lookup(), _Lookup()
    if live is not None:
        for entry, owned in others:
            if entry.get("operation") != "Apply":
                continue
            clashing = [
                p
                for p in applied_paths & owned
                if not p[-1].startswith(("k:", "v:"))
                and live_values.value_at(live, p) != applied_values.value_at(applied, p)
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
    still_applied = {p[:i] for p in applied_paths for i in range(1, len(p) + 1)}
    _remove_all(
        result,
        [p for p in previous - applied_paths - owned_by_others if p not in still_applied],
    )
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
