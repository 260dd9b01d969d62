"""``kaito.sh/v1alpha1`` Workspace: the version the guide uses.

API layer. ``resource.instanceType`` defaults to ``Standard_NC24ads_A100_v4``; the status carries
only ``workerNodes`` and ``conditions``; there is no ``resource.partition``.
"""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from kaito.api._fields import field
from kaito.api._meta import Condition, LabelSelector, ObjectMeta
from kaito.api._spec import InferenceSpec, TuningSpec

__all__ = ("API_VERSION", "DEFAULT_INSTANCE_TYPE", "ResourceSpec", "Workspace", "WorkspaceStatus")

API_VERSION: Final = "kaito.sh/v1alpha1"
DEFAULT_INSTANCE_TYPE: Final = "Standard_NC24ads_A100_v4"


@attrs.frozen
class ResourceSpec:
    """The GPU nodes to run on: instance type, how many, and the labels that select them."""

    count: int | None = field(
        "Number of GPU nodes.", default=1, minimum=1, fix="use 1 or more nodes"
    )
    instance_type: str | None = field(
        f"GPU node SKU (default {DEFAULT_INSTANCE_TYPE}).", default=DEFAULT_INSTANCE_TYPE
    )
    label_selector: LabelSelector | None = field(
        "Labels the GPU nodes carry (matchLabels or In expressions only).",
        required=True,
        map_type="atomic",
        python_default=None,
    )
    preferred_nodes: tuple[str, ...] | None = field(
        "Existing nodes to use first (they need the selector's labels)."
    )


@attrs.frozen
class WorkspaceStatus:
    """Observed state of a Workspace."""

    worker_nodes: tuple[str, ...] | None = field("Nodes chosen to run the workload, sorted.")
    conditions: tuple[Condition, ...] | None = field("Current conditions of the workspace.")


@attrs.frozen
class Workspace:
    """A Workspace: GPU resources plus either an inference service or a tuning Job."""

    version: ClassVar[str] = "v1alpha1"

    api_version: str = field("API version of the object.", python_default=API_VERSION)
    kind: str = field("Kind of the object.", python_default="Workspace")
    metadata: ObjectMeta = field("Standard object metadata.", python_default=ObjectMeta())
    resource: ResourceSpec | None = field("The GPU nodes the workload runs on.")
    inference: InferenceSpec | None = field("An inference service (xor tuning).")
    tuning: TuningSpec | None = field("A fine-tuning Job (xor inference).")
    status: WorkspaceStatus | None = field("Observed state, written by the controller.")
