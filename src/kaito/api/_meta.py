"""The ``meta.k8s.io/v1`` pieces the Workspace API uses: ObjectMeta, LabelSelector, Condition.

API layer. Timestamps stay RFC 3339 strings, as on the wire, so documents round-trip byte for byte.
"""

from __future__ import annotations

from typing import Any

import attrs

from kaito.api._fields import field

__all__ = (
    "Condition",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ObjectMeta",
    "OwnerReference",
)


@attrs.frozen
class OwnerReference:
    """A reference to the object that owns this one (garbage collection follows it)."""

    api_version: str = field("API version of the owner.", required=True)
    kind: str = field("Kind of the owner.", required=True)
    name: str = field("Name of the owner.", required=True)
    uid: str = field("UID of the owner.", required=True)
    controller: bool | None = field("True when the owner is the managing controller.")
    block_owner_deletion: bool | None = field(
        "When true, the owner cannot be deleted (foreground) before this object is."
    )


@attrs.frozen
class ObjectMeta:
    """Standard object metadata (the subset of fields a Workspace carries)."""

    name: str | None = field("Name, unique within the namespace (a DNS-1123 label).")
    generate_name: str | None = field("Prefix the server uses to generate a unique name.")
    namespace: str | None = field("Namespace of the object.")
    uid: str | None = field("Unique id the server assigns.")
    resource_version: str | None = field("Opaque version for optimistic concurrency.")
    generation: int | None = field("Sequence number of the desired state.")
    creation_timestamp: str | None = field("When the object was created (RFC 3339).")
    deletion_timestamp: str | None = field("When deletion was requested (RFC 3339).")
    deletion_grace_period_seconds: int | None = field("Seconds allowed for graceful deletion.")
    labels: dict[str, str] | None = field("Labels for selection and grouping.")
    annotations: dict[str, str] | None = field("Non-identifying metadata.")
    owner_references: tuple[OwnerReference, ...] | None = field("Objects this one depends on.")
    finalizers: tuple[str, ...] | None = field("Must be empty before the object is deleted.")
    managed_fields: tuple[dict[str, Any], ...] | None = field(
        "Server-side apply field ownership (kept verbatim)."
    )


@attrs.frozen
class LabelSelectorRequirement:
    """One matchExpressions term: key, operator and values."""

    key: str = field("The label key the selector applies to.", required=True)
    operator: str = field(
        "In, NotIn, Exists or DoesNotExist.",
        required=True,
        enum=("In", "NotIn", "Exists", "DoesNotExist"),
    )
    values: tuple[str, ...] | None = field(
        "Values for In and NotIn (non-empty); empty for Exists and DoesNotExist.",
        list_type="atomic",
    )


@attrs.frozen
class LabelSelector:
    """A label query over nodes; the terms are ANDed."""

    match_labels: dict[str, str] | None = field(
        "Exact key=value pairs; each is equivalent to an In expression with one value."
    )
    match_expressions: tuple[LabelSelectorRequirement, ...] | None = field(
        "Set-based requirements.", list_type="atomic"
    )


@attrs.frozen
class Condition:
    """One aspect of the observed state (``metav1.Condition``)."""

    type: str = field(
        "Condition type in CamelCase (ResourceReady, InferenceReady, ...).",
        required=True,
        max_length=316,
        pattern=(
            r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        ),
    )
    status: str = field("True, False or Unknown.", required=True, enum=("True", "False", "Unknown"))
    observed_generation: int | None = field(
        "The metadata.generation this condition was computed from.", minimum=0, format="int64"
    )
    last_transition_time: str = field(
        "When the status last changed (RFC 3339).", required=True, format="date-time"
    )
    reason: str = field(
        "A CamelCase identifier of why the condition is what it is.",
        required=True,
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = field(
        "A human-readable message about the transition.", required=True, max_length=32768
    )
