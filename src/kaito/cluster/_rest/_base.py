"""Shared state and conversions of the REST layer: storage form <-> served version, indexes."""

from __future__ import annotations

from typing import Any

from kaito.apimachinery import convert_none
from kaito.cluster._errors import StatusError, bad_request, not_found
from kaito.cluster._json import JSONDecodeError, Obj, dumps, loads
from kaito.cluster._meta import TimeSource
from kaito.cluster._resource_types import Catalog, ResourceType, field_value
from kaito.cluster._rest._types import Admission
from kaito.cluster._store import GroupResource, ObjectIndex, Storage, StoredObject

__all__ = ("NAMESPACES", "RestBase", "strict_message")

NAMESPACES = GroupResource("", "namespaces")
_NO_LABELS: dict[str, str] = {}


def strict_message(rt: ResourceType, issues: list[str]) -> str:
    """The 400 message for strict decoding errors (``unknown field "x"``, ``duplicate field
    "y"``) under ``fieldValidation=Strict``."""
    return (
        f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
        f"strict decoding error: {', '.join(issues)}"
    )


class RestBase:
    """State shared by the read and write halves of :class:`~kaito.cluster._rest.RestApi`."""

    def __init__(
        self, store: Storage, catalog: Catalog, admission: Admission, clock: TimeSource
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.admission = admission
        self.clock = clock
        self._storage_types: dict[GroupResource, ResourceType | None] = {}
        catalog.on_change(self._storage_types.clear)

    # ------------------------------------------------------------------ types

    def storage_type(self, rt: ResourceType) -> ResourceType:
        """The resource type objects of ``rt`` are stored as."""
        if rt.bucket is None and rt.version == rt.storage_version:
            return rt
        gr = rt.gr
        found = self._storage_types.get(gr)
        if found is None:
            found = self.catalog.storage_type(gr)
            self._storage_types[gr] = found
        return found or rt

    def index(self, rt: ResourceType, obj: Obj) -> ObjectIndex:
        """The index fields of an object in storage form."""
        meta = obj["metadata"]
        labels = meta.get("labels") or _NO_LABELS
        owners = meta.get("ownerReferences")
        storage = self.storage_type(rt)
        return ObjectIndex(
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta.get("uid", ""),
            labels=labels,
            fields=tuple(field_value(obj, f) for f in storage.selectable_fields)
            if storage.selectable_fields
            else (),
            owners=tuple(str(o.get("uid", "")) for o in owners if isinstance(o, dict))
            if owners
            else (),
            deleting=bool(meta.get("deletionTimestamp")),
        )

    def field_getter(self, rt: ResourceType, stored: StoredObject) -> Any:
        """A getter of selectable-field values of a stored object."""
        fields = self.storage_type(rt).selectable_fields

        def get(name: str) -> str:
            if name == "metadata.name":
                return stored.name
            if name == "metadata.namespace":
                return stored.namespace
            try:
                return stored.fields[fields.index(name)]
            except (ValueError, IndexError):
                return ""

        return get

    # ------------------------------------------------------------------ conversion

    def to_storage(self, rt: ResourceType, obj: Obj) -> Obj:
        """Convert a served-version object to storage form (in place)."""
        if rt.codec is not None:
            rt.codec.to_storage(obj)
        elif rt.version != rt.storage_version:
            storage = self.storage_type(rt)
            convert_none(obj, storage.api_version, storage.schema)
        return obj

    def from_storage(self, rt: ResourceType, obj: Obj) -> Obj:
        """Convert a stored object to the served version of ``rt`` (in place)."""
        if rt.codec is not None:
            rt.codec.from_storage(obj)
        elif rt.version != rt.storage_version:
            convert_none(obj, rt.api_version, rt.schema)
        return obj

    def converts(self, rt: ResourceType) -> bool:
        """Whether stored bytes differ from what ``rt`` serves."""
        return rt.codec is not None or rt.version != rt.storage_version

    def render(self, rt: ResourceType, stored: StoredObject) -> bytes:
        """The JSON bytes of a stored object as ``rt`` serves it."""
        if not self.converts(rt):
            return stored.data
        return dumps(self.from_storage(rt, loads(stored.data)))

    def decode(self, rt: ResourceType, stored: StoredObject) -> Obj:
        """A stored object as a fresh dict in ``rt``'s version."""
        obj: Obj = loads(stored.data)
        return self.from_storage(rt, obj) if self.converts(rt) else obj

    # ------------------------------------------------------------------ helpers

    async def require(self, rt: ResourceType, namespace: str, name: str) -> StoredObject:
        """The current object, or 404."""
        stored = await self.store.get(rt.gr, namespace if rt.namespaced else "", name)
        if stored is None:
            raise not_found(rt.group, rt.plural, name)
        return stored


def parse_body(data: bytes | str) -> Any:
    """Decode a JSON request body (YAML is decoded by the HTTP layer)."""
    try:
        return loads(data)
    except JSONDecodeError as error:
        raise bad_request(f"error decoding request body: {error}") from error


def ensure_object(value: Any) -> Obj:
    """Reject a body that is not a JSON object."""
    if not isinstance(value, dict):
        raise StatusError(
            400,
            "BadRequest",
            "the body of the request is not a Kubernetes object: expected a JSON object, got "
            f"{type(value).__name__}",
        )
    return value
