"""Engine layer: event handlers that turn informer events into work-queue keys.

A controller's queue holds keys of the kind it reconciles. Events on that kind enqueue the
object's own key; events on owned kinds enqueue the owner's key, found through a controller
``ownerReference`` or through a label that names the owner (controller-runtime's
``EnqueueRequestForOwner`` and ``EnqueueRequestsFromMapFunc``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kaito.engine._keys import ObjectKey
from kaito.engine._store import key_of

__all__ = (
    "EnqueueHandler",
    "EventHandler",
    "KeyMapper",
    "Predicate",
    "generation_changed",
    "map_by_label",
    "map_to_controller_owner",
    "map_to_self",
)

JSON = dict[str, Any]
KeyMapper = Callable[[JSON], Iterable[ObjectKey]]
Predicate = Callable[[JSON | None, JSON], bool]


class EventHandler(Protocol):
    """Protocol: receives an informer's events; must be quick and must not block.

    Handlers run inline in the informer's task; an exception is logged and the informer goes
    on. ``on_update`` also fires on resync with ``old`` equal to ``new``. ``on_delete`` after a
    relist receives the last state the cache knew. A handler may set a ``needs_old = False``
    attribute to say it never reads ``old``; if no handler of an informer needs it, the
    informer skips decoding the previous version and passes ``new`` as ``old``.
    """

    def on_add(self, obj: JSON) -> None:
        """An object appeared."""
        ...

    def on_update(self, old: JSON, new: JSON) -> None:
        """An object changed (or a resync delivered it again)."""
        ...

    def on_delete(self, obj: JSON) -> None:
        """An object went away."""
        ...


class _Enqueuer(Protocol):
    def add(self, key: ObjectKey) -> None: ...


def map_to_self(obj: JSON) -> tuple[ObjectKey]:
    """Key mapper: the object's own key."""
    return (key_of(obj),)


def map_to_controller_owner(kind: str, group: str) -> KeyMapper:
    """Key mapper: the key of the owner of ``kind`` in ``group`` that is the object's controller.

    Only the ``ownerReference`` with ``controller: true`` counts; its ``apiVersion`` group must be
    ``group`` (``""`` for the core API). The owner is in the object's namespace.
    """

    def mapper(obj: JSON) -> list[ObjectKey]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if not ref.get("controller") or ref.get("kind") != kind:
                continue
            api_version = ref.get("apiVersion") or ""
            ref_group = api_version.rpartition("/")[0]
            if ref_group == group:
                return [ObjectKey(meta.get("namespace") or "", ref.get("name") or "")]
        return []

    return mapper


def map_by_label(name_label: str, namespace_label: str | None = None) -> KeyMapper:
    """Key mapper: the owner named by the label ``name_label`` (in ``namespace_label``'s
    namespace if given, else the object's own)."""

    def mapper(obj: JSON) -> list[ObjectKey]:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = labels.get(name_label)
        if not name:
            return []
        namespace = (labels.get(namespace_label) if namespace_label else None) or meta.get(
            "namespace"
        )
        return [ObjectKey(namespace or "", name)]

    return mapper


def generation_changed(old: JSON | None, new: JSON) -> bool:
    """Predicate: pass adds, and updates whose ``metadata.generation`` changed.

    Status-only writes do not bump the generation, so this skips the echo of a controller's own
    status patch (controller-runtime's ``GenerationChangedPredicate``).
    """
    if old is None:
        return True
    old_gen = (old.get("metadata") or {}).get("generation")
    new_gen = (new.get("metadata") or {}).get("generation")
    return old_gen is None or new_gen is None or old_gen != new_gen


class EnqueueHandler:
    """An :class:`EventHandler` that adds the keys ``mapper`` gives to ``queue``.

    On update both the old and the new object are mapped, so a changed owner reference wakes
    both owners. ``predicate(old, new)`` (``old`` is ``None`` for adds and deletes) filters
    events; deletes always pass.
    """

    def __init__(
        self,
        queue: _Enqueuer,
        mapper: KeyMapper = map_to_self,
        predicate: Predicate | None = None,
    ) -> None:
        self.queue = queue
        self.mapper = mapper
        self.predicate = predicate
        self.needs_old = predicate is not None or mapper is not map_to_self

    def on_add(self, obj: JSON) -> None:
        if self.predicate is not None and not self.predicate(None, obj):
            return
        for key in self.mapper(obj):
            self.queue.add(key)

    def on_update(self, old: JSON, new: JSON) -> None:
        if self.predicate is not None and old is not new and not self.predicate(old, new):
            return
        add = self.queue.add
        if self.mapper is map_to_self:
            add(key_of(new))
            return
        keys = set(self.mapper(new))
        keys.update(self.mapper(old))
        for key in keys:
            add(key)

    def on_delete(self, obj: JSON) -> None:
        for key in self.mapper(obj):
            self.queue.add(key)
