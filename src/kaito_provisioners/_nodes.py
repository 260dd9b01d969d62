"""How a backend judges the Kubernetes Node of a claim: joined, Ready, GPUs advertised.

Provisioner layer (private helpers shared by the AKS and Karpenter backends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kaito.engine import ApiError, Resource
from kaito_provisioners import reasons as r
from kaito_provisioners._base import NodeRequest, ProvisionedNode, ProvisioningError

__all__ = (
    "GPU_RESOURCES",
    "LABEL_WORKSPACE",
    "LABEL_WORKSPACE_NAMESPACE",
    "NODES",
    "observe_node",
    "throttled",
    "workspace_labels",
    "workspace_selector",
)

NODES: Final = Resource("", "v1", "nodes", "Node", namespaced=False)
LABEL_WORKSPACE: Final = "kaito.sh/workspace"
LABEL_WORKSPACE_NAMESPACE: Final = "kaito.sh/workspacenamespace"
GPU_RESOURCES: Final = ("nvidia.com/gpu", "amd.com/gpu")


def throttled(err: ApiError, action: str, *, default: float = 1.0) -> ProvisioningError | None:
    """A 429 (or a 503 with ``Retry-After``) from the API server as a ``Throttled`` error."""
    if err.status != 429 and not (err.status == 503 and err.retry_after):
        return None
    wait = err.retry_after or default
    return ProvisioningError(
        r.THROTTLED,
        f"cannot {action}: the API server answered {err.status} {err.reason or 'TooManyRequests'}"
        f" (retrying in {wait:g}s)",
        fix=r.FIXES[r.THROTTLED],
        cause=err.reason or "TooManyRequests",
        retry_after=wait,
    )


def workspace_selector(namespace: str, workspace: str) -> str:
    """The label selector of everything provisioned for one workspace."""
    return f"{LABEL_WORKSPACE}={workspace},{LABEL_WORKSPACE_NAMESPACE}={namespace}"


def workspace_labels(request: NodeRequest) -> dict[str, str]:
    """The request's labels plus the workspace's name and namespace."""
    return {
        **request.labels,
        LABEL_WORKSPACE: request.workspace,
        LABEL_WORKSPACE_NAMESPACE: request.namespace,
    }


def _gpus(node: Mapping[str, Any]) -> int:
    capacity = (
        (node.get("status") or {}).get("allocatable")
        or (node.get("status") or {}).get("capacity")
        or {}
    )
    best = 0
    for resource in GPU_RESOURCES:
        try:
            best = max(best, int(str(capacity.get(resource, "0"))))
        except ValueError:
            continue
    return best


def _ready(node: Mapping[str, Any]) -> tuple[bool, str]:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", str(cond.get("message") or cond.get("reason", ""))
    return False, "no Ready condition yet"


def observe_node(
    claim: str,
    node: Mapping[str, Any] | None,
    *,
    instance_type: str,
    waiting: str,
) -> ProvisionedNode:
    """The state of ``claim`` given its Node (``None``: not joined; ``waiting`` says why)."""
    if node is None:
        return ProvisionedNode(
            claim, False, instance_type, waiting, reason=r.NODE_CLAIM_NOT_READY, claim_ready=False
        )
    name = str((node.get("metadata") or {}).get("name", ""))
    if (node.get("metadata") or {}).get("deletionTimestamp"):
        return ProvisionedNode(
            claim,
            False,
            instance_type,
            f"node {name} is being deleted",
            node_name=name,
            reason=r.NODE_NOT_READY,
            claim_ready=False,
        )
    ready, why = _ready(node)
    if not ready:
        return ProvisionedNode(
            claim,
            False,
            instance_type,
            f"node {name} joined and is not Ready yet ({why})",
            node_name=name,
            reason=r.NODE_NOT_READY,
            claim_ready=True,
        )
    if _gpus(node) <= 0:
        return ProvisionedNode(
            claim,
            False,
            instance_type,
            f"node {name} is Ready; waiting for the device plugin to advertise nvidia.com/gpu",
            node_name=name,
            reason=r.NODE_PLUGINS_NOT_READY,
            claim_ready=True,
        )
    return ProvisionedNode(claim, True, instance_type, "", node_name=name, claim_ready=True)
