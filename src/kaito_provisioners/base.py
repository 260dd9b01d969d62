"""The ``NodeProvisioner`` Protocol: what the Workspace controller asks of a node backend.

Provisioner layer. Controllers depend on this module only, never on a backend (AKS, Karpenter,
fake). A backend creates GPU nodes for a request under deterministic names, so asking twice (or
after a manager restart) never creates duplicates, reports their state, and deletes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final, Protocol

import attrs

__all__ = (
    "GPU_TAINT",
    "NodeProvisioner",
    "NodeRequest",
    "NodeSetStatus",
    "ProvisionedNode",
    "ProvisioningError",
    "Taint",
    "node_claim_name",
)


@attrs.frozen
class Taint:
    """A node taint (``key=value:Effect``)."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}"


GPU_TAINT: Final = Taint("sku", "gpu", "NoSchedule")


@attrs.frozen
class NodeRequest:
    """GPU nodes a Workspace needs from the provisioner.

    ``count`` is how many nodes the provisioner must own for the workspace (nodes the user brought
    are already subtracted); ``labels`` go on every node (the Workspace's selector labels and
    ``kaito.sh/workspace``/``kaito.sh/workspacenamespace``).
    """

    workspace: str
    namespace: str
    instance_type: str
    count: int
    labels: Mapping[str, str] = attrs.field(factory=dict)
    taints: tuple[Taint, ...] = (GPU_TAINT,)
    disk_gib: float = 1024.0
    node_image_family: str = "ubuntu"

    def names(self) -> list[str]:
        """The deterministic names of the ``count`` nodes (claims) of this request."""
        return [node_claim_name(self.namespace, self.workspace, i) for i in range(self.count)]


def node_claim_name(namespace: str, workspace: str, index: int) -> str:
    """``ws`` + 9 hex digits: a valid AKS agent-pool name (``^[a-z][a-z0-9]{0,11}$``), stable
    for a given workspace and index so a restarted manager finds what it created."""
    digest = hashlib.sha256(f"{namespace}/{workspace}/{index}".encode()).hexdigest()
    return f"ws{digest[:9]}"


@attrs.frozen
class ProvisionedNode:
    """One node of a workspace: its name, whether it is Ready, and why not."""

    name: str
    ready: bool
    instance_type: str = ""
    message: str = ""


class ProvisioningError(Exception):
    """The backend cannot provide the nodes; ``reason`` is CamelCase for the status condition.

    ``retryable`` errors (capacity, throttling, timeouts) are retried with backoff; others
    (quota exceeded, unsupported SKU) still are, but slowly, since they need a human.
    """

    def __init__(self, reason: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable


@attrs.frozen
class NodeSetStatus:
    """What the backend knows of a workspace's nodes after ``ensure``."""

    nodes: tuple[ProvisionedNode, ...] = ()
    #: A provisioning failure the backend observed (quota, capacity, a node that never joined).
    error: ProvisioningError | None = None

    @property
    def ready_names(self) -> tuple[str, ...]:
        return tuple(sorted(n.name for n in self.nodes if n.ready))


class NodeProvisioner(Protocol):
    """Protocol: creates, observes and deletes the GPU nodes of workspaces.

    Implementations are idempotent: ``ensure`` creates only the nodes of ``request.names()`` that
    do not exist yet and reports the state of all of them; ``release`` deletes every node of the
    workspace and succeeds when there is none. Both may be cancelled at any await point and called
    again.
    """

    async def ensure(self, request: NodeRequest) -> NodeSetStatus:
        """Make sure the request's nodes exist (creating missing ones); report their state."""
        ...

    async def release(self, namespace: str, workspace: str) -> None:
        """Delete every node this provisioner created for the workspace."""
        ...
