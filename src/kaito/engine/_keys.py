"""Engine layer: the key a reconcile receives, ``ObjectKey(namespace, name)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ("ObjectKey",)


@attrs.frozen(cache_hash=True)
class ObjectKey:
    """Namespace and name of an object; ``namespace`` is ``""`` for cluster-scoped objects."""

    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        """Return the key of a Kubernetes object given as a JSON dict."""
        meta = obj.get("metadata") or {}
        return cls(meta.get("namespace") or "", meta.get("name") or "")

    @classmethod
    def parse(cls, text: str) -> ObjectKey:
        """Parse ``"namespace/name"`` (or ``"name"`` for a cluster-scoped object)."""
        namespace, sep, name = text.partition("/")
        if not sep:
            return cls("", namespace)
        if not name or "/" in name:
            raise ValueError(f"key={text!r} is not a key; use 'namespace/name' or 'name'")
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name
