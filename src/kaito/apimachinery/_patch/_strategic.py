"""Strategic merge patch for built-in kinds, driven by the schema's patch metadata
(``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``) and the directives kubectl
sends (``$patch``, ``$retainKeys``, ``$setElementOrder/…``, ``$deleteFromPrimitiveList/…``)."""

from __future__ import annotations

from typing import Any

from kaito.apimachinery._schema import Schema

__all__ = ("StrategicPatchError", "strategic_merge")

_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


class StrategicPatchError(ValueError):
    """A patch that contradicts the schema (for example a merge list item without its key)."""


def _meta(schema: Schema | None) -> tuple[str, str]:
    if schema is None:
        return "", ""
    raw = schema.raw
    return str(raw.get("x-kubernetes-patch-strategy", "")), str(
        raw.get("x-kubernetes-patch-merge-key", "")
    )


def strategic_merge(original: Any, patch: Any, schema: Schema | None) -> Any:
    """Apply a strategic merge patch; ``original`` is modified in place when it is a dict."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_SET_ORDER):
            orders[key[len(_SET_ORDER) :]] = value if isinstance(value, list) else []
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE) :]
            current = original.get(field)
            if isinstance(current, list) and isinstance(value, list):
                original[field] = [item for item in current if item not in value]
            continue
        child = schema.child(key) if schema is not None else None
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(original.get(key), value, child)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            original[key] = _merge_list(original.get(key), value, child)
        else:
            original[key] = value
    for field, order in orders.items():
        current = original.get(field)
        if isinstance(current, list):
            child = schema.child(field) if schema is not None else None
            original[field] = _order(current, order, _meta(child)[1])
    if isinstance(retain, list):
        for key in [k for k in original if k not in retain]:
            del original[key]
    return original


def _merge_list(original: Any, patch: list[Any], schema: Schema | None) -> list[Any]:
    strategy, merge_key = _meta(schema)
    if "merge" not in strategy.split(",") or not isinstance(original, list):
        return [
            _strip(item)
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "delete")
        ]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            item
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "replace")
        ]
    if not merge_key:
        result = list(original)
        present = {_hashable(item) for item in result}
        for item in patch:
            key = _hashable(item)
            if key not in present:
                present.add(key)
                result.append(item)
        return result
    items_schema = schema.items if schema is not None else None
    result = list(original)
    # Index the merge keys once: a long list must not cost a scan per patched item.
    positions: dict[Any, int] = {}
    for i, existing in enumerate(result):
        if isinstance(existing, dict):
            positions.setdefault(_hashable(existing.get(merge_key)), i)
    deleted: set[int] = set()
    for item in patch:
        if not isinstance(item, dict):
            raise StrategicPatchError(
                f"list item {item!r} must be an object with merge key {merge_key!r}"
            )
        if merge_key not in item:
            raise StrategicPatchError(
                f"map: {item!r} does not contain declared merge key: {merge_key}"
            )
        key = _hashable(item[merge_key])
        index = positions.get(key)
        if item.get("$patch") == "delete":
            if index is not None:
                deleted.add(index)
                del positions[key]
            continue
        if index is None:
            positions[key] = len(result)
            result.append(_strip(item))
        else:
            result[index] = strategic_merge(result[index], item, items_schema)
    return [item for i, item in enumerate(result) if i not in deleted]


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return ("{", tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("[", tuple(_hashable(v) for v in value))
    return (type(value).__name__, value) if isinstance(value, bool) else value


def _strip(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: _strip(v) for k, v in item.items() if not k.startswith("$")}
    return item


def _order(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    def key_of(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    position = {
        repr(k if not isinstance(k, dict) else k.get(merge_key)): i for i, k in enumerate(order)
    }
    ordered = sorted(
        (item for item in items if repr(key_of(item)) in position),
        key=lambda item: position[repr(key_of(item))],
    )
    rest = [item for item in items if repr(key_of(item)) not in position]
    return ordered + rest
