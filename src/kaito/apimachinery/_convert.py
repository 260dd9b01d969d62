"""Version conversion with the ``None`` strategy: rewrite ``apiVersion``, prune to the target.

Bottom layer. This is what kube-apiserver does for a CRD whose ``spec.conversion.strategy`` is
``None``: the object keeps its fields, gets the target ``apiVersion``, and the structural schema of
the target version prunes what that version does not declare.
"""

from __future__ import annotations

from typing import Any

from kaito.apimachinery._schema import Schema

__all__ = ("convert_none",)


def convert_none(obj: dict[str, Any], api_version: str, schema: Schema | None) -> list[str]:
    """Convert ``obj`` in place to ``api_version``; return the paths the target pruned."""
    obj["apiVersion"] = api_version
    dropped: list[str] = []
    if schema is not None:
        schema.prune(obj, "", dropped, root=True)
    return dropped
