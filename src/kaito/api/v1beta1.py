"""``kaito.sh/v1beta1`` Workspace: upstream's storage version.

API layer. Differs from ``v1alpha1`` by ``resource.partition`` and the richer status (``state``,
``targetNodeCount``, ``performance``); ``resource.instanceType`` has no default here.
"""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from kaito.api._fields import field
from kaito.api._meta import Condition, LabelSelector, ObjectMeta
from kaito.api._spec import InferenceSpec, PartitionSpec, Performance, TuningSpec

__all__ = ("API_VERSION", "ResourceSpec", "Workspace", "WorkspaceStatus")

API_VERSION: Final = "kaito.sh/v1beta1"


@attrs.frozen
class ResourceSpec:
    """The GPU nodes to run on: instance type, how many, and the labels that select them."""

    count: int | None = field(
        "Number of GPU nodes (deprecated: vLLM workspaces are sized by the node estimator).",
        default=1,
        minimum=1,
        fix="use 1 or more nodes",
        deprecated=True,
    )
    instance_type: str | None = field(
        "GPU node SKU. Required with node auto-provisioning; empty for bring-your-own nodes."
    )
    label_selector: LabelSelector | None = field(
        "Labels the GPU nodes carry (matchLabels or In expressions only).",
        required=True,
        map_type="atomic",
        python_default=None,
    )
    preferred_nodes: tuple[str, ...] | None = field(
        "Existing nodes to use first (they need the selector's labels).", deprecated=True
    )
    partition: PartitionSpec | None = field(
        "GPU partitioning on bring-your-own nodes (MIG or whole accelerators)."
    )


@attrs.frozen
class WorkspaceStatus:
    """Observed state of a Workspace."""

    worker_nodes: tuple[str, ...] | None = field("Nodes chosen to run the workload, sorted.")
    state: str | None = field(
        "High-level state: Pending; Ready/NotReady (inference); Running/Succeeded/Failed (tuning)."
    )
    conditions: tuple[Condition, ...] | None = field("Current conditions of the workspace.")
    target_node_count: int | None = field(
        "Number of GPU nodes the workload needs; set once.", format="int32"
    )
    performance: Performance | None = field("Metrics from the post-load inference benchmark.")


@attrs.frozen
class Workspace:
    """A Workspace: GPU resources plus either an inference service or a tuning Job."""

    version: ClassVar[str] = "v1beta1"

    api_version: str = field("API version of the object.", python_default=API_VERSION)
    kind: str = field("Kind of the object.", python_default="Workspace")
    metadata: ObjectMeta = field("Standard object metadata.", python_default=ObjectMeta())
    resource: ResourceSpec | None = field("The GPU nodes the workload runs on.")
    inference: InferenceSpec | None = field("An inference service (xor tuning).")
    tuning: TuningSpec | None = field("A fine-tuning Job (xor inference).")
    status: WorkspaceStatus | None = field("Observed state, written by the controller.")
