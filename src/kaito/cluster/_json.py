"""JSON encoding for the in-process cluster (lowest layer): compact bytes through orjson."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ("JSONDecodeError", "Obj", "dumps", "dumps_compact", "loads")

Obj = dict[str, Any]
"""A decoded Kubernetes object: plain JSON dicts, lists and scalars."""

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: object) -> bytes:
    """Encode ``value`` as compact JSON bytes."""
    return orjson.dumps(value)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON bytes or text."""
    return orjson.loads(data)


def dumps_compact(value: object) -> bytes:
    """Encode for long-term storage: a right-sized copy (orjson's buffers keep ~4 KiB each)."""
    return bytes(memoryview(orjson.dumps(value)))
