"""Request options, results and the admission Protocol of the REST layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from kaito.cluster._json import Obj
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._selectors import FieldSelector, LabelSelector
from kaito.cluster._store import StoredObject

__all__ = (
    "Admission",
    "AdmissionAttributes",
    "DeleteOptions",
    "DeleteOutcome",
    "ListOptions",
    "ListResult",
    "NoAdmission",
    "RequestContext",
    "WatchOptions",
    "WriteOptions",
)


@attrs.define
class RequestContext:
    """Who is asking, and the warnings to send back (``Warning: 299`` headers)."""

    user: str = "system:admin"
    groups: tuple[str, ...] = ("system:masters", "system:authenticated")
    uid: str = ""
    warnings: list[str] = attrs.field(factory=list)
    duplicate_fields: list[str] = attrs.field(factory=list)
    """Keys the request body gave twice (strict decoding errors, reported with unknown fields)."""
    large_body: bool = False
    """The body was large: free memory goes back to the OS once the request is answered."""


@attrs.frozen
class WriteOptions:
    """Query parameters of create, update and patch."""

    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"
    """``Strict``, ``Warn`` (the server default) or ``Ignore``."""
    force: bool = False


@attrs.frozen
class DeleteOptions:
    """``DeleteOptions`` from the body or the query."""

    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


@attrs.frozen
class ListOptions:
    """Query parameters of list."""

    label_selector: LabelSelector = attrs.field(factory=LabelSelector)
    field_selector: FieldSelector = attrs.field(factory=FieldSelector)
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@attrs.frozen
class WatchOptions:
    """Query parameters of watch."""

    label_selector: LabelSelector = attrs.field(factory=LabelSelector)
    field_selector: FieldSelector = attrs.field(factory=FieldSelector)
    resource_version: str = ""
    send_initial_events: bool | None = None


@attrs.frozen
class ListResult:
    """One page of a list."""

    rv: int
    items: Sequence[StoredObject]
    continue_token: str = ""
    remaining: int | None = None


@attrs.frozen
class DeleteOutcome:
    """What a delete did: removed the object, or marked it for deletion behind finalizers."""

    obj: StoredObject | None
    deleted: bool
    final: Obj | None = None
    """The object as it was removed (or would be, for a dry run)."""


@attrs.frozen
class AdmissionAttributes:
    """The request an admission plugin sees."""

    rt: ResourceType
    operation: str
    """``CREATE``, ``UPDATE``, ``DELETE``."""
    namespace: str
    name: str
    subresource: str
    old: Obj | None
    context: RequestContext
    dry_run: bool
    options: Obj


class Admission(Protocol):
    """Protocol: the admission chain (webhooks) around every write."""

    def active(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        """Cheap check: could any hook apply to this request?"""
        ...

    async def mutate(self, attributes: AdmissionAttributes, obj: Obj) -> Obj:
        """Run mutating hooks; returns the (possibly patched) object or raises ``StatusError``."""
        ...

    async def validate(self, attributes: AdmissionAttributes, obj: Obj | None) -> None:
        """Run validating hooks; raises ``StatusError`` when one denies the request."""
        ...


class NoAdmission:
    """An admission chain with no hooks."""

    def active(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        del rt, operation, subresource
        return False

    async def mutate(self, attributes: AdmissionAttributes, obj: Obj) -> Obj:
        del attributes
        return obj

    async def validate(self, attributes: AdmissionAttributes, obj: Obj | None) -> None:
        del attributes, obj
