"""The ``karpenter`` and ``azure-gpu-provisioner`` backends: ``karpenter.sh/v1`` NodeClaims,
fulfilled by Azure's gpu-provisioner or any Karpenter-core provider, unchanged.

Provisioner layer. NodeClaims are cluster-scoped and named after the claim (``ws`` + 9 hex),
so a restarted manager finds what it created and creates nothing twice. Readiness comes from the
NodeClaim's conditions (``Launched``, ``Registered``, ``Initialized``, ``Ready``) and from the
Node it names (Ready, GPUs advertised by the device plugin). A launch error the provider reports
on ``Launched`` is shown with its message; a NodeClaim Karpenter deleted for insufficient
capacity is recreated after a backoff, its Event's message shown meanwhile. Deletion goes through
Karpenter's termination finalizer: ``release`` returns once the NodeClaims are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import attrs
import structlog

from kaito.engine import EVENTS, ApiError, ObjectKey, ObjectList, Resource
from kaito_provisioners import reasons as r
from kaito_provisioners._base import NodeRequest, NodeSetStatus, ProvisionedNode, ProvisioningError
from kaito_provisioners._metrics import ProvisioningStats
from kaito_provisioners._nodes import (
    LABEL_WORKSPACE,
    LABEL_WORKSPACE_NAMESPACE,
    NODES,
    observe_node,
    throttled,
    workspace_selector,
)
from kaito_provisioners.karpenter._nodeclaim import LABEL_NODEPOOL, nodeclaim_manifest
from kaito_provisioners.karpenter._settings import KarpenterSettings

__all__ = ("NODECLAIMS", "NodeClaimProvisioner")

log = structlog.get_logger(__name__)

NODECLAIMS: Final = Resource("karpenter.sh", "v1", "nodeclaims", "NodeClaim", namespaced=False)
LIFECYCLE: Final = ("Launched", "Registered", "Initialized")
_BENIGN: Final = frozenset({"", "AwaitingReconciliation"})
_EVENT_PAGES: Final = 4


class _KubeClient(Protocol):
    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ObjectList: ...

    async def create(
        self, resource: Resource, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def delete(self, resource: Resource, key: ObjectKey) -> None: ...


@attrs.frozen
class _Seen:
    """The last state of a NodeClaim this backend saw, to explain its disappearance."""

    uid: str
    launched: bool
    registered: bool


def _conditions(claim: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (claim.get("status") or {}).get("conditions") or ()}


def _true(conditions: Mapping[str, Mapping[str, Any]], type_: str) -> bool:
    return conditions.get(type_, {}).get("status") == "True"


def _launch_reason(message: str) -> str:
    lowered = message.lower()
    if "quotaexceeded" in lowered or "quota" in lowered:
        return r.QUOTA_EXCEEDED
    if "skunotavailable" in lowered or "not available in location" in lowered:
        return r.SKU_NOT_AVAILABLE
    if "insufficient capacity" in lowered or "insufficientcapacity" in lowered:
        return r.INSUFFICIENT_CAPACITY
    return r.LAUNCH_FAILED


class NodeClaimProvisioner:
    """GPU nodes as NodeClaims written through ``client`` (the manager's Kubernetes client)."""

    def __init__(self, client: _KubeClient, settings: KarpenterSettings | None = None) -> None:
        self.client = client
        self.settings = settings or KarpenterSettings()
        self._seen: dict[str, _Seen] = {}
        self._blocked: dict[tuple[str, str], tuple[float, ProvisioningError]] = {}
        self._last: dict[tuple[str, str], tuple[ProvisionedNode, ...]] = {}
        self._problem: dict[tuple[str, str], str] = {}
        self.stats = ProvisioningStats("karpenter")

    # -- the Protocol ---------------------------------------------------------------------

    async def ensure(self, request: NodeRequest) -> NodeSetStatus:
        """Create the missing NodeClaims and report them and their Nodes."""
        key = (request.namespace, request.workspace)
        waiting = self._waiting(key)
        if waiting is not None and waiting.reason == r.THROTTLED:
            return NodeSetStatus(self._last.get(key, ()), waiting)
        try:
            status = await self._ensure(key, request)
        except ApiError as err:
            slow_down = throttled(err, f"manage the NodeClaims of {key[0]}/{key[1]}")
            if slow_down is None:
                raise
            self._blocked[key] = (self.settings.clock() + (slow_down.retry_after or 1.0), slow_down)
            self.stats.error(slow_down.reason)
            return NodeSetStatus(self._last.get(key, ()), slow_down)
        self._last[key] = status.nodes
        return status

    async def _ensure(self, key: tuple[str, str], request: NodeRequest) -> NodeSetStatus:
        found = await self.client.list(
            NODECLAIMS, label_selector=workspace_selector(request.namespace, request.workspace)
        )
        claims = {c["metadata"]["name"]: c for c in found.items}
        error: ProvisioningError | None = self._waiting(key)
        for name in request.names():
            if name in claims:
                continue
            seen = self._seen.pop(name, None)
            if seen is not None:
                gone = await self._vanished(name, seen, request)
                self.stats.error(gone.reason)
                if gone.retry_after:
                    self._blocked[key] = (self.settings.clock() + gone.retry_after, gone)
                error = error or gone
            if self._waiting(key) is not None:
                continue
            claims[name] = await self._create(name, request)
        nodes, problem = await self._observe(request, claims)
        reported = self._problem.pop(key, None)
        if problem is not None:
            self._problem[key] = problem.reason
            if problem.reason != reported:  # count a problem when it arises, not every pass
                self.stats.error(problem.reason)
        return NodeSetStatus(nodes, error or problem, recheck_after=self.settings.recheck)

    async def release(self, namespace: str, workspace: str) -> None:
        """Delete the workspace's NodeClaims; returns once Karpenter has let them all go.

        Raises ``ProvisioningError`` (``NodesDeleting``) while any is still terminating.
        """
        self._blocked.pop((namespace, workspace), None)
        self._last.pop((namespace, workspace), None)
        self._problem.pop((namespace, workspace), None)
        found = await self.client.list(
            NODECLAIMS, label_selector=workspace_selector(namespace, workspace)
        )
        if not found.items:
            return
        names = sorted(c["metadata"]["name"] for c in found.items)
        for claim in found.items:
            name = claim["metadata"]["name"]
            self._seen.pop(name, None)
            if not claim["metadata"].get("deletionTimestamp"):
                await self.client.delete(NODECLAIMS, ObjectKey("", name))
                self.stats.deleted += 1
                log.info(
                    "nodeclaim_deleted", nodeclaim=name, workspace=workspace, namespace=namespace
                )
        raise ProvisioningError(
            r.NODES_DELETING,
            f"waiting for Karpenter to terminate NodeClaims {', '.join(names)} of "
            f"{namespace}/{workspace}",
            fix=r.FIXES[r.NODES_DELETING],
            retry_after=1.0,
        )

    async def collect_garbage(self, exists: Callable[[str, str], bool]) -> int:
        """Delete KAITO's NodeClaims whose Workspace is gone."""
        found = await self.client.list(
            NODECLAIMS, label_selector=f"{LABEL_NODEPOOL}=kaito,{LABEL_WORKSPACE}"
        )
        deleted = 0
        for claim in found.items:
            meta = claim["metadata"]
            labels = meta.get("labels") or {}
            workspace = labels.get(LABEL_WORKSPACE, "")
            namespace = labels.get(LABEL_WORKSPACE_NAMESPACE, "")
            if meta.get("deletionTimestamp") or exists(namespace, workspace):
                continue
            await self.client.delete(NODECLAIMS, ObjectKey("", meta["name"]))
            self.stats.deleted += 1
            self._seen.pop(meta["name"], None)
            log.info(
                "orphan_nodeclaim_deleted",
                nodeclaim=meta["name"],
                workspace=workspace,
                namespace=namespace,
            )
            deleted += 1
        return deleted

    # -- helpers --------------------------------------------------------------------------

    async def _create(self, name: str, request: NodeRequest) -> dict[str, Any]:
        manifest = nodeclaim_manifest(request, name, self.settings)
        try:
            created = await self.client.create(NODECLAIMS, manifest)
        except ApiError as err:
            if err.status != 409:
                raise
            return manifest  # created meanwhile (another pass, or a manager before a restart)
        self.stats.created += 1
        log.info(
            "nodeclaim_created",
            nodeclaim=name,
            instance_type=request.instance_type,
            workspace=request.workspace,
            namespace=request.namespace,
        )
        return created

    async def _vanished(self, name: str, seen: _Seen, request: NodeRequest) -> ProvisioningError:
        """Why a NodeClaim this backend saw is gone: Karpenter's Event, or its timeouts."""
        message = await self._capacity_event(name, seen.uid)
        if message is not None:
            return ProvisioningError(
                r.INSUFFICIENT_CAPACITY,
                f"Karpenter deleted NodeClaim {name} ({request.instance_type}): {message}",
                fix=r.FIXES[r.INSUFFICIENT_CAPACITY],
                cause="InsufficientCapacityError",
                retry_after=self.settings.capacity_retry,
            )
        if seen.launched and not seen.registered:
            return ProvisioningError(
                r.NODE_NOT_REGISTERED,
                f"NodeClaim {name} launched but its node never registered; Karpenter deleted it "
                f"and KAITO creates it again in {self.settings.capacity_retry:g}s",
                fix=r.FIXES[r.NODE_NOT_REGISTERED],
                retry_after=self.settings.capacity_retry,
            )
        return ProvisioningError(
            r.LAUNCH_FAILED,
            f"NodeClaim {name} was deleted before its node was ready (Karpenter's launch or "
            "registration timeout, or a user); KAITO creates it again in "
            f"{self.settings.capacity_retry:g}s",
            fix=r.FIXES[r.LAUNCH_FAILED],
            retry_after=self.settings.capacity_retry,
        )

    async def _capacity_event(self, name: str, uid: str) -> str | None:
        """The message of Karpenter's ``InsufficientCapacityError`` Event for this NodeClaim."""
        token: str | None = None
        for _ in range(_EVENT_PAGES):
            page = await self.client.list(
                EVENTS, namespace="default", limit=500, continue_token=token
            )
            for event in page.items:
                involved = event.get("involvedObject") or {}
                if (
                    involved.get("kind") == "NodeClaim"
                    and involved.get("name") == name
                    and involved.get("uid") in (uid, None, "")
                    and event.get("reason") == "InsufficientCapacityError"
                ):
                    return str(event.get("message", ""))
            token = page.continue_token
            if not token:
                break
        return None

    async def _observe(
        self, request: NodeRequest, claims: Mapping[str, Mapping[str, Any]]
    ) -> tuple[tuple[ProvisionedNode, ...], ProvisioningError | None]:
        joined: dict[str, dict[str, Any]] = {}
        if any((c.get("status") or {}).get("nodeName") for c in claims.values()):
            found = await self.client.list(
                NODES, label_selector=workspace_selector(request.namespace, request.workspace)
            )
            joined = {n["metadata"]["name"]: n for n in found.items}
        nodes = []
        problem: ProvisioningError | None = None
        for name in request.names():
            claim = claims.get(name)
            if claim is None:
                continue
            conditions = _conditions(claim)
            self._seen[name] = _Seen(
                str((claim.get("metadata") or {}).get("uid", "")),
                _true(conditions, "Launched"),
                _true(conditions, "Registered"),
            )
            launched = conditions.get("Launched", {})
            message = str(launched.get("message") or "")
            if (
                not _true(conditions, "Launched")
                and launched.get("reason") not in _BENIGN
                and (message)
            ):
                reason = _launch_reason(message)
                problem = problem or ProvisioningError(
                    reason,
                    f"NodeClaim {name} is not launched: {launched.get('reason')}: {message}",
                    fix=r.FIXES[reason],
                    cause=str(launched.get("reason")),
                )
            node = joined.get(str((claim.get("status") or {}).get("nodeName") or ""))
            observed = observe_node(
                name,
                node,
                instance_type=request.instance_type,
                waiting=_waiting_for(name, claim, conditions),
            )
            if claim.get("metadata", {}).get("deletionTimestamp"):
                observed = attrs.evolve(
                    observed,
                    ready=False,
                    claim_ready=False,
                    reason=r.NODE_CLAIM_NOT_READY,
                    message=f"NodeClaim {name} is being deleted",
                )
            elif not _true(conditions, "Ready"):
                observed = attrs.evolve(
                    observed,
                    ready=False,
                    claim_ready=False,
                    reason=observed.reason if not observed.ready else r.NODE_CLAIM_NOT_READY,
                    message=observed.message or _waiting_for(name, claim, conditions),
                )
            nodes.append(observed)
        return tuple(nodes), problem

    def _waiting(self, key: tuple[str, str]) -> ProvisioningError | None:
        entry = self._blocked.get(key)
        if entry is None:
            return None
        until, err = entry
        now = self.settings.clock()
        if now >= until:
            del self._blocked[key]
            return None
        return ProvisioningError(
            err.reason,
            err.message,
            cause=err.cause,
            retry_after=until - now,
            retryable=err.retryable,
        )


def _waiting_for(name: str, claim: Mapping[str, Any], conditions: Mapping[str, Any]) -> str:
    """The first lifecycle step of the NodeClaim that is not done, in Karpenter's words."""
    for type_ in LIFECYCLE:
        cond = conditions.get(type_) or {}
        if cond.get("status") != "True":
            why = cond.get("message") or cond.get("reason") or "awaiting reconciliation"
            return f"NodeClaim {name}: {type_}={cond.get('status', 'Unknown')} ({why})"
    node = (claim.get("status") or {}).get("nodeName", "")
    return f"NodeClaim {name} is Ready; waiting for node {node}"
