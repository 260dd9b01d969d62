"""JSON patch (RFC 6902): add, remove, replace, move, copy and test, with kube-apiserver's limits.

Bottom layer. As kube-apiserver does, a patch may hold at most 10,000 operations and its ``copy``
operations may add at most the request-body limit of bytes in total (a handful of ``copy`` ops
that each double the document would otherwise grow it past any memory).
"""

from __future__ import annotations

import copy
from typing import Any, Final

import orjson

__all__ = ("MAX_OPERATIONS", "JsonPatchError", "JsonPatchTooLarge", "json_equal", "json_patch")

MAX_OPERATIONS: Final = 10_000
_DEFAULT_COPY_LIMIT: Final = 3 * 1024 * 1024


class JsonPatchError(ValueError):
    """An operation that does not apply; the message says which and why."""


class JsonPatchTooLarge(JsonPatchError):
    """Too many operations, or copies that grow the document past the limit (HTTP 413)."""


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` equals ``1.0``, objects ignore key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, parts: list[str], op: str, path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                raise JsonPatchError(
                    f"{op} operation does not apply: doc is missing path: {path!r}"
                )
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(part, len(node), op, path)]
        else:
            raise JsonPatchError(f"{op} operation does not apply: doc is missing path: {path!r}")
    return node


def _index(part: str, length: int, op: str, path: str, *, allow_end: bool = False) -> int:
    if part == "-" and allow_end:
        return length
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")) or len(part) > 18:
        raise JsonPatchError(
            f"{op} operation does not apply: invalid array index {part!r} in {path!r}"
        )
    index = int(part)
    if index > length or (index == length and not allow_end):
        raise JsonPatchError(
            f"{op} operation does not apply: index {index} out of bounds in {path!r}"
        )
    return index


def _get(doc: Any, path: str, op: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    node = _container(doc, parts, op, path)
    last = parts[-1]
    if isinstance(node, dict):
        if last not in node:
            raise JsonPatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return node[last]
    if isinstance(node, list):
        return node[_index(last, len(node), op, path)]
    raise JsonPatchError(f"{op} operation does not apply: doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    node = _container(doc, parts, op, path)
    last = parts[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list):
        node.insert(_index(last, len(node), op, path, allow_end=True), value)
    else:
        raise JsonPatchError(f"{op} operation does not apply: doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise JsonPatchError(f"{op} operation does not apply: cannot remove the document root")
    node = _container(doc, parts, op, path)
    last = parts[-1]
    if isinstance(node, dict):
        if last not in node:
            raise JsonPatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return doc, node.pop(last)
    if isinstance(node, list):
        return doc, node.pop(_index(last, len(node), op, path))
    raise JsonPatchError(f"{op} operation does not apply: doc is missing path: {path!r}")


def _size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return 0


def json_patch(doc: Any, operations: Any, *, copy_limit: int = _DEFAULT_COPY_LIMIT) -> Any:
    """Apply a list of operations to ``doc`` (modified in place) and return the result.

    Raises:
        JsonPatchTooLarge: more than :data:`MAX_OPERATIONS` operations, or copies adding more
            than ``copy_limit`` bytes.
        JsonPatchError: an operation that does not apply.
    """
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON patch must be a list of operations")
    if len(operations) > MAX_OPERATIONS:
        raise JsonPatchTooLarge(
            f"The allowed count of operations in a JSON patch is {MAX_OPERATIONS}, but the patch "
            f"has {len(operations)}"
        )
    copied = 0
    for operation in operations:
        if not isinstance(operation, dict):
            raise JsonPatchError(f"operation {operation!r} must be an object")
        op = operation.get("op")
        path = operation.get("path")
        if not isinstance(path, str):
            raise JsonPatchError(f"operation {op!r} is missing its path")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc, _ = _remove(doc, path)
        elif op == "replace":
            _get(doc, path, "replace")
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(operation.get("value"))
            else:
                node = _container(doc, parts, "replace", path)
                if isinstance(node, dict):
                    node[parts[-1]] = copy.deepcopy(operation.get("value"))
                else:
                    node[_index(parts[-1], len(node), "replace", path)] = copy.deepcopy(
                        operation.get("value")
                    )
        elif op == "move":
            source = operation.get("from")
            if not isinstance(source, str):
                raise JsonPatchError("move operation is missing 'from'")
            doc, value = _remove(doc, source, "move")
            doc = _add(doc, path, value, "move")
        elif op == "copy":
            source = operation.get("from")
            if not isinstance(source, str):
                raise JsonPatchError("copy operation is missing 'from'")
            value = _get(doc, source, "copy")
            copied += _size(value)
            if copied > copy_limit:
                raise JsonPatchTooLarge(
                    "Unable to copy, the accumulated size increase of copy is "
                    f"{copied}, exceeding the limit {copy_limit}"
                )
            doc = _add(doc, path, copy.deepcopy(value), "copy")
        elif op == "test":
            if not json_equal(_get(doc, path, "test"), operation.get("value")):
                raise JsonPatchError(f"testing value {path} failed: test failed")
        else:
            raise JsonPatchError(f"Unexpected kind: {op}")
    return doc
