"""GPU nodes for a Workspace: count the usable ones, ask the provisioner for the rest.

Controller layer. Nodes the user brought count first (``preferredNodes`` before others), as
upstream counts them: with node auto-provisioning, the Workspace's pods are pinned to nodes
carrying its ``kaito.sh/workspace``/``kaito.sh/workspacenamespace`` labels, so only such nodes
(matching the selector, without KAITO's nodepool label) count; with bring-your-own nodes the
selector alone decides. The provisioner is asked only for what is missing, under deterministic
names, so repeating this (or a restarted manager) never creates duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kaito.api import constants as c
from kaito.api import selector_as_map
from kaito.api.v1beta1 import Workspace
from kaito.catalog import SKU
from kaito.controllers._status import NodeObservation
from kaito_provisioners import NodeProvisioner, NodeRequest, ProvisioningError

__all__ = (
    "byo_ready_nodes",
    "ensure_nodes",
    "gpu_config_of_nodes",
    "is_ready_gpu_node",
    "node_request",
    "pinned_ready_nodes",
)

GPU_RESOURCES: Final = ("nvidia.com/gpu", "amd.com/gpu")
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_COUNT_LABEL: Final = "nvidia.com/gpu.count"
GPU_MEMORY_LABEL: Final = "nvidia.com/gpu.memory"
R_NODE: Final = c.Reason.NODE_NOT_READY
R_PLUGINS: Final = c.Reason.NODE_PLUGINS_NOT_READY


def is_ready_gpu_node(node: Mapping[str, Any]) -> bool:
    """Ready, not being deleted, and advertising GPU capacity (the device plugin is up)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    if meta.get("deletionTimestamp"):
        return False
    ready = any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in status.get("conditions") or ()
    )
    capacity = status.get("capacity") or {}
    gpus = max((_int(capacity.get(r)) for r in GPU_RESOURCES), default=0)
    return ready and gpus > 0


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _user_labels(ws: Workspace) -> dict[str, str]:
    selector = selector_as_map(ws.resource.label_selector if ws.resource else None) or {}
    return {k: v for k, v in selector.items() if k not in c.RESERVED_SELECTOR_LABELS}


def _ready_matching(
    ws: Workspace, nodes: Iterable[Mapping[str, Any]], wanted: Mapping[str, str]
) -> list[str]:
    preferred = set((ws.resource.preferred_nodes if ws.resource else None) or ())
    out = []
    for node in nodes:
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        if c.LABEL_NODEPOOL in labels:
            continue  # provisioned by KAITO
        if not all(labels.get(k) == v for k, v in wanted.items()):
            continue
        if is_ready_gpu_node(node):
            out.append(meta.get("name", ""))
    return sorted(out, key=lambda n: (n not in preferred, n))


def byo_ready_nodes(ws: Workspace, nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Bring-your-own mode: ready GPU nodes carrying every (non-reserved) selector label that
    KAITO did not provision (sorted, preferred first)."""
    unclaimed = (
        n for n in nodes if c.LABEL_WORKSPACE not in ((n.get("metadata") or {}).get("labels") or {})
    )
    return _ready_matching(ws, unclaimed, _user_labels(ws))


def pinned_ready_nodes(ws: Workspace, nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Node auto-provisioning: ready GPU nodes the user brought for this Workspace, i.e. with the
    selector's labels and its ``kaito.sh/workspace``/``kaito.sh/workspacenamespace`` labels (the
    Workspace's pods can land nowhere else), without KAITO's nodepool label."""
    wanted = {
        **_user_labels(ws),
        c.LABEL_WORKSPACE: ws.metadata.name or "",
        c.LABEL_WORKSPACE_NAMESPACE: ws.metadata.namespace or "default",
    }
    return _ready_matching(ws, nodes, wanted)


def gpu_config_of_nodes(nodes: Iterable[Mapping[str, Any]]) -> SKU | None:
    """The GPUs of a bring-your-own node from its NVIDIA feature-discovery labels
    (``nvidia.com/gpu.product|count|memory``, memory in MiB), as upstream reads them; None
    without them."""
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        try:
            count = int(labels[GPU_COUNT_LABEL])
            memory_mib = int(labels[GPU_MEMORY_LABEL])
            product = str(labels[GPU_PRODUCT_LABEL])
        except (KeyError, ValueError):
            continue
        if count > 0:
            return SKU(product, "byo", count, count * memory_mib / 1024, product)
    return None


def node_request(ws: Workspace, count: int, *, disk_gib: float) -> NodeRequest:
    """What to ask the provisioner for: ``count`` nodes of the instance type, labelled."""
    assert ws.resource is not None
    annotations = ws.metadata.annotations or {}
    return NodeRequest(
        workspace=ws.metadata.name or "",
        namespace=ws.metadata.namespace or "default",
        instance_type=ws.resource.instance_type or "",
        count=count,
        labels=_user_labels(ws),
        disk_gib=disk_gib,
        node_image_family=annotations.get(c.ANNOTATION_NODE_IMAGE_FAMILY, ""),
        node_class=annotations.get(c.ANNOTATION_NODE_CLASS_NAME, ""),
    )


async def ensure_nodes(
    ws: Workspace,
    target: int,
    nodes: Iterable[Mapping[str, Any]],
    provisioner: NodeProvisioner | None,
    *,
    disk_gib: float,
    provisioned: Iterable[Mapping[str, Any]] = (),
) -> NodeObservation:
    """Make sure ``target`` ready GPU nodes serve the workspace; report what is there.

    ``provisioned`` are the cached nodes labelled for this workspace (by the provisioner, or by
    the user for it); when enough of them are Ready the provisioner is not called at all. With a
    provisioner (node auto-provisioning), the missing nodes are requested; without one
    (bring-your-own), ``nodes`` matching the selector are counted and the message says what is
    missing.
    """
    provisioned = list(provisioned)
    if provisioner is None:
        byo = byo_ready_nodes(ws, nodes)[:target]
    else:
        byo = pinned_ready_nodes(ws, provisioned)[:target]
    missing = target - len(byo)
    if provisioner is None:
        message = (
            ""
            if missing <= 0
            else (
                f"{missing} more ready GPU node(s) with labels {_user_labels(ws)} are needed; "
                "label bring-your-own nodes to match the selector"
            )
        )
        return NodeObservation(target, tuple(byo), message=message, provisioned=False)
    if missing <= 0:
        return NodeObservation(target, tuple(byo), provisioned=True)
    cached = sorted(
        (n.get("metadata") or {}).get("name", "")
        for n in provisioned
        if c.LABEL_NODEPOOL in ((n.get("metadata") or {}).get("labels") or {})
        and is_ready_gpu_node(n)
    )
    if len(cached) >= missing:
        # The cache already shows the provisioned nodes Ready: nothing to ask the provisioner.
        return NodeObservation(target, (*byo, *cached[:missing]), provisioned=True)
    try:
        result = await provisioner.ensure(node_request(ws, missing, disk_gib=disk_gib))
    except ProvisioningError as err:
        return NodeObservation(
            target, tuple(byo), reason=err.reason, message=err.message, retry_after=err.retry_after
        )
    ready = (*byo, *result.ready_names)
    claims_ready = len(result.nodes) >= missing and all(n.fulfilled for n in result.nodes)
    unready = [n for n in result.nodes if not n.ready]
    node_reason = next(
        (n.reason for n in unready if n.reason in (R_PLUGINS, R_NODE) and n.claim_ready), None
    )
    if result.error is not None:
        return NodeObservation(
            target,
            ready,
            reason=result.error.reason,
            message=result.error.message,
            claims_ready=claims_ready,
            node_reason=node_reason,
            retry_after=result.error.retry_after,
        )
    parts = [n.message or f"waiting for {n.kubernetes_name} to become Ready" for n in unready]
    pending = missing - len(result.nodes)
    if pending > 0:
        parts.append(
            f"{pending} {ws.resource.instance_type if ws.resource else ''} node(s) requested"
        )
    return NodeObservation(
        target,
        ready,
        message="; ".join(parts),
        claims_ready=claims_ready,
        node_reason=node_reason,
        retry_after=result.recheck_after,
    )
