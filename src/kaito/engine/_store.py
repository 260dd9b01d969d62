"""Engine layer: the informer's in-memory cache of one resource, with indexes.

Objects are kept as compact JSON text, not as nested dicts: a dict tree costs several times the
size of its JSON, and the cache holds every object of a resource. Each read decodes a fresh copy,
so callers may mutate what they get (the same guarantee controller-runtime's cache gives with a
deep copy). Keys are indexed by namespace always, and by any named index function on demand.
Not thread-safe: used from one event loop, with no locks.
"""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from kaito.engine._keys import ObjectKey

__all__ = ("OWNER_INDEX", "IndexFunc", "Store", "index_by_owner_uid")

JSON = dict[str, Any]
IndexFunc = Callable[[JSON], Iterable[str]]

#: Name of the index that maps an owner's UID to the keys of the objects it owns.
OWNER_INDEX = "owner"

_encode: Callable[[JSON], str] = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, check_circular=False
).encode
_decode: Callable[[str], JSON] = json.JSONDecoder().decode


def index_by_owner_uid(obj: JSON) -> list[str]:
    """Index function: the UIDs in ``metadata.ownerReferences``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return [ref["uid"] for ref in refs if ref.get("uid")]


def key_of(obj: JSON) -> ObjectKey:
    """Return the key of ``obj``, sharing the namespace string between keys."""
    meta = obj.get("metadata") or {}
    return ObjectKey(sys.intern(meta.get("namespace") or ""), meta.get("name") or "")


class Store:
    """A key -> object map with secondary indexes; reads return fresh dicts."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[ObjectKey, str] = {}
        self._by_namespace: dict[str, set[ObjectKey]] = {}
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._indices: dict[str, dict[str, set[ObjectKey]]] = {n: {} for n in self._indexers}

    # -- indexes --------------------------------------------------------------------------

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add the index ``name`` and build it over the objects already stored."""
        if name in self._indexers or name == "namespace":
            raise ValueError(f"index name={name!r} is already taken; choose another name")
        self._indexers[name] = func
        index: dict[str, set[ObjectKey]] = {}
        self._indices[name] = index
        for key, text in self._items.items():
            for value in func(_decode(text)):
                index.setdefault(value, set()).add(key)

    @property
    def index_names(self) -> tuple[str, ...]:
        """Return the names of the custom indexes (``namespace`` is always there)."""
        return tuple(self._indexers)

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: ObjectKey) -> JSON | None:
        """Return a fresh copy of the object ``key``, or ``None``."""
        text = self._items.get(key)
        return None if text is None else _decode(text)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ObjectKey]:
        """Iterate over a snapshot of the stored keys."""
        return iter(builtins.list(self._items))

    def keys(self, namespace: str | None = None) -> builtins.list[ObjectKey]:
        """Return the stored keys (of one namespace if given)."""
        if namespace is None:
            return list(self._items)
        return list(self._by_namespace.get(namespace, ()))

    def list(self, namespace: str | None = None) -> builtins.list[JSON]:
        """Return fresh copies of the stored objects (of one namespace if given)."""
        return [_decode(self._items[key]) for key in self.keys(namespace)]

    def keys_by_index(self, name: str, value: str) -> builtins.list[ObjectKey]:
        """Return the keys whose index function gave ``value`` for the index ``name``."""
        if name == "namespace":
            return self.keys(value)
        try:
            index = self._indices[name]
        except KeyError:
            raise KeyError(
                f"index name={name!r} does not exist; known: namespace, {', '.join(self._indices)}"
            ) from None
        return list(index.get(value, ()))

    def by_index(self, name: str, value: str) -> builtins.list[JSON]:
        """Return fresh copies of the objects in the index ``name`` under ``value``."""
        return [_decode(self._items[key]) for key in self.keys_by_index(name, value)]

    def items(self) -> Iterator[tuple[ObjectKey, JSON]]:
        """Iterate over ``(key, fresh copy)`` pairs (a snapshot of the keys)."""
        for key in list(self._items):
            text = self._items.get(key)
            if text is not None:
                yield key, _decode(text)

    # -- writes (the informer's) ----------------------------------------------------------

    def upsert(
        self,
        obj: JSON,
        key: ObjectKey | None = None,
        text: str | None = None,
        *,
        want_old: bool = True,
    ) -> JSON | bool | None:
        """Store ``obj`` (``text`` is its JSON if the caller already has it).

        Return the previous version decoded, or ``None`` if the object is new. With
        ``want_old=False`` an update returns ``True`` instead, sparing the decode.
        """
        key = key or key_of(obj)
        if text is None:
            text = _encode(obj)
        old_text = self._items.get(key)
        self._items[key] = text
        if old_text is None:
            bucket = self._by_namespace.get(key.namespace)
            if bucket is None:
                bucket = self._by_namespace[key.namespace] = set()
            bucket.add(key)
            self._index(key, obj)
            return None
        if not self._indexers:
            return _decode(old_text) if want_old else True
        old = _decode(old_text)
        self._unindex(key, old)
        self._index(key, obj)
        return old

    def delete(self, key: ObjectKey) -> JSON | None:
        """Drop ``key``; return the last stored version, or ``None`` if it was not stored."""
        text = self._items.pop(key, None)
        if text is None:
            return None
        old = _decode(text)
        bucket = self._by_namespace.get(key.namespace)
        if bucket is not None:
            bucket.discard(key)
            if not bucket:
                del self._by_namespace[key.namespace]
        self._unindex(key, old)
        return old

    def _index(self, key: ObjectKey, obj: JSON) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                bucket = index.get(value)
                if bucket is None:
                    bucket = index[value] = set()
                bucket.add(key)

    def _unindex(self, key: ObjectKey, obj: JSON) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[value]
