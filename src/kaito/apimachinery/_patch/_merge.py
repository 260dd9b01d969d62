"""JSON merge patch (RFC 7386), applied in place."""

from __future__ import annotations

from typing import Any

__all__ = ("merge_patch",)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` and return the result (``target`` is reused when a dict).

    The patch is consumed: its values are placed into the result without copying.
    """
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            target[key] = merge_patch(target.get(key), value)
        else:
            target[key] = value
    return target
