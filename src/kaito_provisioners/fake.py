"""The fake node provisioner: GPU Nodes appear in the cluster (the in-process one, typically).

Provisioner backend. ``ensure`` creates a Node object per missing name with the SKU's GPU
capacity (``nvidia.com/gpu``), the instance-type label, the workspace's labels and the
``sku=gpu:NoSchedule`` taint; the node turns Ready ``delay`` seconds after it was requested.
Failures can be injected per instance type or per workspace: quota exceeded, capacity
unavailable, a timeout (nothing ever appears), or a node that never becomes Ready. State lives in
the Node objects themselves (an annotation holds when each becomes ready), so a restarted manager
with a new provisioner finds exactly what the previous one made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import attrs
import structlog

from kaito.catalog import SKU, sku_catalog
from kaito.engine import ApiError, ObjectKey, ObjectList, Resource
from kaito_provisioners._base import (
    NodeRequest,
    NodeSetStatus,
    ProvisionedNode,
    ProvisioningError,
)
from kaito_provisioners._metrics import ProvisioningStats
from kaito_provisioners._nodes import throttled
from kaito_provisioners.reasons import FIXES

__all__ = ("NODES", "FakeFailure", "FakeProvisioner")

log = structlog.get_logger(__name__)

NODES: Final = Resource("", "v1", "nodes", "Node", namespaced=False)
READY_AT: Final = "fake.kaito.sh/ready-at"
REQUESTED_AT: Final = "fake.kaito.sh/requested-at"
LABEL_NODEPOOL: Final = "karpenter.sh/nodepool"
LABEL_WORKSPACE: Final = "kaito.sh/workspace"
LABEL_WORKSPACE_NAMESPACE: Final = "kaito.sh/workspacenamespace"

FailureKind = Literal["quota", "capacity", "timeout", "never_ready"]


class _NodeClient(Protocol):
    async def list(
        self, resource: Resource, *, label_selector: str | None = None
    ) -> ObjectList: ...

    async def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_status(
        self, resource: Resource, key: ObjectKey, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def delete(self, resource: Resource, key: ObjectKey) -> None: ...


@attrs.frozen
class FakeFailure:
    """An injected failure and the message the cloud would give."""

    kind: FailureKind
    message: str = ""


_FAILURE_REASONS: Final = {
    "quota": ("QuotaExceeded", False),
    "capacity": ("SKUNotAvailable", True),
    "timeout": ("ProvisioningTimeout", True),
    "never_ready": ("NodeNotReady", True),
}


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gpu_labels(sku: SKU | None) -> dict[str, str]:
    if sku is None:
        return {}
    per_gpu_mib = int(sku.per_gpu_memory * 1024)
    return {
        "nvidia.com/gpu.product": sku.gpu_model.replace(" ", "-"),
        "nvidia.com/gpu.count": str(sku.gpu_count),
        "nvidia.com/gpu.memory": str(per_gpu_mib),
    }


class FakeProvisioner:
    """Creates GPU Node objects for workspaces through the Kubernetes API.

    ``now`` returns wall-clock seconds (injectable for tests); ``timeout`` bounds how long a
    timeout or never-ready failure waits before it is reported; ``recheck`` (seconds) is how soon
    to be asked again (None: the caller's own cadence).
    """

    def __init__(
        self,
        client: _NodeClient,
        *,
        delay: float = 0.0,
        timeout: float = 600.0,
        now: Callable[[], float] = time.time,
        recheck: float | None = None,
    ) -> None:
        self.client = client
        self.delay = delay
        self.timeout = timeout
        self.now = now
        self.recheck = recheck
        self.stats = ProvisioningStats("fake")
        self._reported: dict[tuple[str, str], str] = {}
        self.skus = sku_catalog()
        self._failures: dict[tuple[str, str], FakeFailure] = {}
        self._requested: dict[str, float] = {}

    # -- fault injection ----------------------------------------------------------------

    def fail(
        self,
        failure: FakeFailure | FailureKind,
        *,
        instance_type: str | None = None,
        workspace: str | None = None,
    ) -> None:
        """Make requests for ``instance_type`` (or ``workspace``, or all when neither) fail."""
        if isinstance(failure, str):
            failure = FakeFailure(failure)
        self._failures[(instance_type or "*", workspace or "*")] = failure

    def heal(self) -> None:
        """Remove every injected failure."""
        self._failures.clear()

    def _failure_for(self, request: NodeRequest) -> FakeFailure | None:
        for key in (
            (request.instance_type, request.workspace),
            (request.instance_type, "*"),
            ("*", request.workspace),
            ("*", "*"),
        ):
            if key in self._failures:
                return self._failures[key]
        return None

    # -- the Protocol ---------------------------------------------------------------------

    async def ensure(self, request: NodeRequest) -> NodeSetStatus:
        """Create missing nodes, turn due ones Ready, and report all of them.

        A throttled API server (429) is reported as ``Throttled`` with its ``Retry-After``.
        """
        try:
            return await self._ensure(request)
        except ApiError as err:
            slow_down = throttled(
                err, f"create the nodes of {request.namespace}/{request.workspace}"
            )
            if slow_down is None:
                raise
            return NodeSetStatus((), slow_down)

    async def _ensure(self, request: NodeRequest) -> NodeSetStatus:
        existing = await self._nodes(request.namespace, request.workspace)
        failure = self._failure_for(request)
        wanted = request.names()
        error: ProvisioningError | None = None
        if failure is not None and failure.kind in ("quota", "capacity"):
            error = self._error(failure, request)
        else:
            for name in wanted:
                if name in existing:
                    continue
                if failure is not None and failure.kind == "timeout":
                    first = self._requested.setdefault(name, self.now())
                    if self.now() - first >= self.timeout:
                        error = self._error(failure, request)
                    continue
                existing[name] = await self._create(name, request, failure)
        nodes = []
        for name in wanted:
            node = existing.get(name)
            if node is None:
                continue
            node = await self._advance(node)
            nodes.append(self._observe(node))
            if failure is not None and failure.kind == "never_ready" and error is None:
                requested = self._requested_at(node)
                if self.now() - requested >= self.timeout:
                    error = self._error(failure, request)
        if error is None:
            self._reported.pop((request.namespace, request.workspace), None)
        if error is not None and self.recheck is not None:
            error.retry_after = self.recheck
        return NodeSetStatus(tuple(nodes), error, recheck_after=self.recheck)

    async def release(self, namespace: str, workspace: str) -> None:
        """Delete every node created for the workspace."""
        for name in await self._nodes(namespace, workspace):
            await self.client.delete(NODES, ObjectKey("", name))
            self.stats.deleted += 1
            self._requested.pop(name, None)
            log.info("fake_node_deleted", node=name, workspace=workspace, namespace=namespace)

    # -- helpers --------------------------------------------------------------------------

    def _error(self, failure: FakeFailure, request: NodeRequest) -> ProvisioningError:
        reason, retryable = _FAILURE_REASONS[failure.kind]
        key = (request.namespace, request.workspace)
        if self._reported.get(key) != reason:  # counted when it arises, not every pass
            self._reported[key] = reason
            self.stats.error(reason)
        defaults = {
            "quota": f"not enough quota for {request.count} x {request.instance_type}: "
            "the subscription's GPU core quota is exhausted",
            "capacity": f"{request.instance_type} is not available in this region right now",
            "timeout": f"no node of {request.instance_type} joined within {self.timeout:g}s",
            "never_ready": f"the {request.instance_type} node joined but never became Ready "
            f"within {self.timeout:g}s (kubelet not ready)",
        }
        return ProvisioningError(
            reason,
            failure.message or defaults[failure.kind],
            fix=FIXES.get(reason, ""),
            retryable=retryable,
        )

    async def _nodes(self, namespace: str, workspace: str) -> dict[str, dict[str, Any]]:
        selector = (
            f"{LABEL_WORKSPACE}={workspace},{LABEL_WORKSPACE_NAMESPACE}={namespace},"
            f"{LABEL_NODEPOOL}=kaito"
        )
        found = await self.client.list(NODES, label_selector=selector)
        return {n["metadata"]["name"]: n for n in found.items}

    async def _create(
        self, name: str, request: NodeRequest, failure: FakeFailure | None
    ) -> dict[str, Any]:
        sku = self.skus.get(request.instance_type)
        now = self.now()
        ready_at = (
            "never"
            if failure is not None and failure.kind == "never_ready"
            else _stamp(now + self.delay)
        )
        labels = {
            **request.labels,
            LABEL_WORKSPACE: request.workspace,
            LABEL_WORKSPACE_NAMESPACE: request.namespace,
            LABEL_NODEPOOL: "kaito",
            "kaito.sh/machine-type": "gpu",
            "kaito.sh/creation-timestamp": _stamp(now).replace(":", "-"),
            "agentpool": name,
            "node.kubernetes.io/instance-type": request.instance_type,
            "beta.kubernetes.io/instance-type": request.instance_type,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            **_gpu_labels(sku),
        }
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    READY_AT: ready_at,
                    REQUESTED_AT: _stamp(now),
                    "karpenter.sh/do-not-disrupt": "true",
                    "kaito.sh/node-image-family": request.node_image_family or "ubuntu",
                },
            },
            "spec": {
                "providerID": f"fake://{name}",
                "taints": [
                    {"key": t.key, "value": t.value, "effect": t.effect} for t in request.taints
                ],
            },
        }
        try:
            created = await self.client.create(NODES, node)
            self.stats.created += 1
        except ApiError as err:
            if err.status != 409:
                raise
            created = node  # another ensure created it first
        # The status (capacity, NotReady) goes in a second write; a node left without it by an
        # interruption here gets it from _advance on the next ensure.
        created = await self.client.patch_status(
            NODES, ObjectKey("", name), self._status(created, ready=False)
        )
        log.info("fake_node_created", node=name, instance_type=request.instance_type,
                 workspace=request.workspace, ready_at=ready_at)  # fmt: skip
        return created

    @staticmethod
    def _ready_condition(ready: bool, now: float, reason: str) -> dict[str, Any]:
        return {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": reason,
            "message": "kubelet is posting ready status"
            if ready
            else "container runtime network not ready",
            "lastHeartbeatTime": _stamp(now),
            "lastTransitionTime": _stamp(now),
        }

    def _requested_at(self, node: Mapping[str, Any]) -> float:
        stamp = ((node.get("metadata") or {}).get("annotations") or {}).get(REQUESTED_AT, "")
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return self.now()

    def _status(self, node: Mapping[str, Any], *, ready: bool) -> dict[str, Any]:
        labels = (node.get("metadata") or {}).get("labels") or {}
        sku = self.skus.get(labels.get("node.kubernetes.io/instance-type", ""))
        gpus = str(sku.gpu_count) if sku else "1"
        now = self.now()
        return {
            "capacity": {"cpu": "24", "memory": "220Gi", "pods": "110", "nvidia.com/gpu": gpus},
            "allocatable": {"cpu": "23", "memory": "200Gi", "pods": "110", "nvidia.com/gpu": gpus},
            "conditions": [
                self._ready_condition(ready, now, "KubeletReady" if ready else "KubeletNotReady")
            ],
            "nodeInfo": {"kubeletVersion": "v1.32.4", "operatingSystem": "linux",
                         "architecture": "amd64"},
        }  # fmt: skip

    async def _advance(self, node: dict[str, Any]) -> dict[str, Any]:
        """Turn the node Ready once its time has come; repair a status an interruption lost."""
        ready_at = ((node.get("metadata") or {}).get("annotations") or {}).get(READY_AT, "never")
        due = ready_at != "never" and self.now() >= (
            datetime.strptime(ready_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        )
        has_capacity = "nvidia.com/gpu" in ((node.get("status") or {}).get("capacity") or {})
        if has_capacity and _is_ready(node) == due:
            return node
        name = node["metadata"]["name"]
        return await self.client.patch_status(
            NODES, ObjectKey("", name), self._status(node, ready=due)
        )

    @staticmethod
    def _observe(node: Mapping[str, Any]) -> ProvisionedNode:
        meta = node.get("metadata") or {}
        ready = _is_ready(node)
        return ProvisionedNode(
            name=meta.get("name", ""),
            ready=ready,
            instance_type=(meta.get("labels") or {}).get("node.kubernetes.io/instance-type", ""),
            message="" if ready else "waiting for the node to become Ready",
        )


def _is_ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False
