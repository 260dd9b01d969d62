"""The ``NodeProvisioner`` Protocol: what the Workspace controller asks of a node backend.

Provisioner layer. Controllers depend on this module only, never on a backend (AKS, Karpenter,
fake). A backend creates GPU nodes for a request under deterministic names, so asking twice (or
after a manager restart) never creates duplicates, reports their state, and deletes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Final, Protocol, runtime_checkable

import attrs

__all__ = (
    "GPU_TAINT",
    "CollectsGarbage",
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
    #: ``ubuntu`` or ``azurelinux`` (``kaito.sh/node-image-family``); empty: the backend's default.
    node_image_family: str = ""
    #: The NodeClass the Workspace asked for (``kaito.sh/node-class-name``); empty: the default.
    node_class: str = ""

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
    """One node claim of a workspace (an agent pool, a NodeClaim, a fake Node) and its Node.

    ``name`` is the claim's deterministic name; ``node_name`` the Kubernetes Node that joined for
    it (empty while none has, or when it is the claim's name). ``claim_ready`` says the backend
    fulfilled the claim (the pool succeeded, the NodeClaim launched and registered); ``ready``
    says the Node is usable: Ready, and its GPUs advertised by the device plugin. ``reason``
    (``NodeClaimNotReady``, ``NodeNotReady``, ``NodePluginsNotReady``) and ``message`` say why not.
    """

    name: str
    ready: bool
    instance_type: str = ""
    message: str = ""
    node_name: str = ""
    reason: str = ""
    claim_ready: bool | None = None

    @property
    def kubernetes_name(self) -> str:
        """The Node's name (the claim's name when the backend names Nodes after claims)."""
        return self.node_name or self.name

    @property
    def fulfilled(self) -> bool:
        """Whether the claim is fulfilled (``claim_ready``, or ``ready`` when not reported)."""
        return self.ready if self.claim_ready is None else self.claim_ready


class ProvisioningError(Exception):
    """The backend cannot provide the nodes; ``reason`` is CamelCase for the status condition.

    ``message`` says what happened and, after ``; ``, the ``fix`` (what a human can do about it);
    ``cause`` is the provider's own code (``QuotaExceeded``, ``OperationNotAllowed``...).
    ``retry_after`` is how long the provider asked us to wait (ARM's ``Retry-After``) or how long
    the backend will wait before trying again; nothing is sent to the provider before then.
    ``retryable`` errors (capacity, throttling, timeouts) clear by themselves; others (quota, an
    unsupported SKU, credentials) need a human and are retried slowly.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        fix: str = "",
        cause: str = "",
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        full = f"{message}; {fix}" if fix else message
        super().__init__(full)
        self.reason = reason
        self.message = full
        self.fix = fix
        self.cause = cause
        self.retry_after = retry_after
        self.retryable = retryable


@attrs.frozen
class NodeSetStatus:
    """What the backend knows of a workspace's nodes after ``ensure``."""

    nodes: tuple[ProvisionedNode, ...] = ()
    #: A provisioning failure the backend observed (quota, capacity, a node that never joined).
    error: ProvisioningError | None = None
    #: When the backend expects news while nothing failed (None: the caller's own cadence).
    recheck_after: float | None = None

    @property
    def ready_names(self) -> tuple[str, ...]:
        """The Kubernetes names of the usable Nodes, sorted."""
        return tuple(sorted(n.kubernetes_name for n in self.nodes if n.ready))


class NodeProvisioner(Protocol):
    """Protocol: creates, observes and deletes the GPU nodes of workspaces.

    Implementations are idempotent: ``ensure`` creates only the nodes of ``request.names()`` that
    do not exist yet and reports the state of all of them (problems as ``NodeSetStatus.error``,
    never by raising for the provider's refusals); ``release`` deletes every node of the workspace
    and returns once there is none, raising ``ProvisioningError`` (``NodesDeleting``) while
    deletions still run so the caller retries. Both may be cancelled at any await point and
    called again, by this process or a restarted one.
    """

    async def ensure(self, request: NodeRequest) -> NodeSetStatus:
        """Make sure the request's nodes exist (creating missing ones); report their state."""
        ...

    async def release(self, namespace: str, workspace: str) -> None:
        """Delete every node this provisioner created for the workspace."""
        ...


@runtime_checkable
class CollectsGarbage(Protocol):
    """Protocol: a backend that finds and deletes nodes whose Workspace is gone.

    ``exists(namespace, name)`` answers from the manager's Workspace cache. Returns how many
    claims were deleted. Called periodically by the manager (see ``kaito_provisioners._gc``).
    """

    async def collect_garbage(self, exists: Callable[[str, str], bool]) -> int:
        """Delete the claims of Workspaces for which ``exists`` is false."""
        ...
