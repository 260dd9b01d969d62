"""The ``aks`` backend: one AKS agent pool per node claim, through the Azure SDK, as upstream's
gpu-provisioner does it, in-process.

Provisioner layer. The pool is named after the claim (``ws`` + 9 hex), so a restarted manager
finds the pools it created (``GET`` answers; nothing is created twice). Pools are created with
``begin_create_or_update`` and followed through the SDK's long-running-operation poller (one
``ensure`` waits at most ``lro_wait`` on it; the next resumes it); a pool found after a restart
is followed by ``GET``. A ``Failed`` pool is deleted and created again after a backoff. ARM's
throttling (429) stops every call until its ``Retry-After`` has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import attrs
import structlog
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import AsyncRetryPolicy
from azure.core.polling import AsyncLROPoller
from azure.core.rest import AsyncHttpResponse, HttpRequest
from azure.identity.aio import DefaultAzureCredential
from azure.mgmt.containerservice.aio import ContainerServiceClient
from azure.mgmt.containerservice.models import AgentPool

from kaito.engine import ObjectList, Resource
from kaito_provisioners import reasons as r
from kaito_provisioners._base import NodeRequest, NodeSetStatus, ProvisionedNode, ProvisioningError
from kaito_provisioners._metrics import ProvisioningStats
from kaito_provisioners._nodes import (
    LABEL_WORKSPACE,
    LABEL_WORKSPACE_NAMESPACE,
    NODES,
    observe_node,
    workspace_selector,
)
from kaito_provisioners.aks._errors import arm_code, classify, pool_failure
from kaito_provisioners.aks._pools import (
    CREATION_LAYOUT,
    LABEL_CREATION,
    LABEL_NODEPOOL,
    agent_pool_body,
)
from kaito_provisioners.aks._settings import AksSettings

__all__ = ("AksProvisioner",)

log = structlog.get_logger(__name__)

_POOL_LABELS = ("agentpool", "kubernetes.azure.com/agentpool")
_IN_PROGRESS_CREATE = "in progress create node pool operation"


class _NodeLister(Protocol):
    async def list(
        self, resource: Resource, *, label_selector: str | None = None
    ) -> ObjectList: ...


class _ArmRetryPolicy(AsyncRetryPolicy[HttpRequest, AsyncHttpResponse]):
    """azure-core's retries, except throttling: a 429 comes back to the backend, which waits the
    ``Retry-After`` without holding a reconcile worker and shows it on the Workspace."""

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        if response.http_response.status_code == 429:
            return False
        return bool(super().is_retry(settings, response))


@attrs.frozen
class _Pool:
    """What ARM said of one pool in this pass."""

    state: str
    error: Mapping[str, Any] | None = None


def _props(pool: Any) -> Mapping[str, Any]:
    properties = pool.get("properties") if isinstance(pool, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def _state(pool: Any) -> str:
    return str(_props(pool).get("provisioningState") or "Unknown")


def _error(pool: Any) -> Mapping[str, Any] | None:
    status = _props(pool).get("status")
    if isinstance(status, Mapping) and isinstance(status.get("provisioningError"), Mapping):
        return status["provisioningError"]  # type: ignore[no-any-return]
    return None


def _labels(pool: Any) -> Mapping[str, str]:
    labels = _props(pool).get("nodeLabels")
    return labels if isinstance(labels, Mapping) else {}


class AksProvisioner:
    """GPU nodes as AKS agent pools of one cluster (``settings``); ``kube`` lists their Nodes.

    ``credential`` defaults to ``DefaultAzureCredential`` (workload identity in a pod, a service
    principal from the environment, the Azure CLI...), reaching the token endpoint of
    ``AZURE_AUTHORITY_HOST``. Close it with :meth:`aclose`.
    """

    def __init__(
        self,
        settings: AksSettings,
        kube: _NodeLister,
        *,
        credential: Any = None,
        **client_options: Any,
    ) -> None:
        settings.check()
        self.settings = settings
        self.kube = kube
        verify = settings.connection_verify
        self.credential = credential or DefaultAzureCredential(connection_verify=verify)
        self.arm = ContainerServiceClient(
            self.credential,
            settings.subscription_id,
            base_url=settings.arm_endpoint,
            retry_policy=_ArmRetryPolicy(
                retry_total=3, retry_backoff_factor=0.5, retry_backoff_max=8
            ),
            polling_interval=settings.poll_interval,
            connection_verify=verify,
            **client_options,
        )
        self._creating: dict[str, AsyncLROPoller[Any]] = {}
        self._blocked: dict[tuple[str, str], tuple[float, ProvisioningError]] = {}
        self._throttled: tuple[float, ProvisioningError] | None = None
        self._unjoined_since: dict[str, float] = {}
        self._last: dict[tuple[str, str], tuple[ProvisionedNode, ...]] = {}
        self.stats = ProvisioningStats("aks")

    @property
    def _now(self) -> Callable[[], float]:
        return self.settings.clock

    async def aclose(self) -> None:
        """Close the ARM client and the credential's sessions."""
        await self.arm.close()
        await self.credential.close()

    # -- the Protocol ---------------------------------------------------------------------

    async def ensure(self, request: NodeRequest) -> NodeSetStatus:
        """Create the missing agent pools, follow them, and report their Nodes."""
        key = (request.namespace, request.workspace)
        waiting = self._waiting(key)
        if waiting is not None:
            return NodeSetStatus(self._last.get(key, ()), waiting)
        pools: dict[str, _Pool] = {}
        error: ProvisioningError | None = None
        try:
            for name in request.names():
                pools[name] = await self._pool(name, request)
        except ProvisioningError as err:
            error = err
        except AzureError as err:
            error = classify(err, f"manage the agent pools of {key[0]}/{key[1]}", self.settings)
        nodes, timeout = await self._observe(request, pools)
        error = error or timeout
        if error is not None:
            self.stats.error(error.reason)
            self._block(key, error)
        self._last[key] = nodes
        return NodeSetStatus(nodes, error, recheck_after=self.settings.recheck)

    async def release(self, namespace: str, workspace: str) -> None:
        """Delete the workspace's agent pools; returns once none is left.

        Raises ``ProvisioningError`` (``NodesDeleting``) while deletions are still running, so the
        caller retries.
        """
        self._blocked.pop((namespace, workspace), None)
        self._last.pop((namespace, workspace), None)
        throttled = self._waiting((namespace, workspace))
        if throttled is not None:
            raise throttled
        try:
            pools = [
                pool
                async for pool in self.arm.agent_pools.list(
                    self.settings.resource_group, self.settings.cluster_name
                )
                if _labels(pool).get(LABEL_WORKSPACE) == workspace
                and _labels(pool).get(LABEL_WORKSPACE_NAMESPACE) == namespace
            ]
        except AzureError as err:
            error = classify(err, f"list the agent pools of {namespace}/{workspace}", self.settings)
            if error.reason == r.THROTTLED:
                self._block((namespace, workspace), error)
            raise error from err
        names = [str(pool.get("name")) for pool in pools]
        for name in names:
            self._creating.pop(name, None)
            self._unjoined_since.pop(name, None)
        if not pools:
            return
        deletions = []
        for pool in pools:
            poller = await self._delete(str(pool.get("name")), _state(pool))
            if poller is not None:
                deletions.append(poller)
        if deletions and len(deletions) == len(pools):
            with anyio.move_on_after(self.settings.lro_wait):
                for poller in deletions:
                    await poller.result()
                return
        raise ProvisioningError(
            r.NODES_DELETING,
            f"deleting agent pools {', '.join(sorted(names))} of {namespace}/{workspace}",
            fix=r.FIXES[r.NODES_DELETING],
            retry_after=self.settings.poll_interval,
        )

    async def collect_garbage(self, exists: Callable[[str, str], bool]) -> int:
        """Delete KAITO's pools whose Workspace is gone (older than ``gc_grace``)."""
        throttled = self._waiting(("", ""))
        if throttled is not None:
            raise throttled
        try:
            return await self._collect(exists)
        except AzureError as err:
            raise classify(err, "collect orphaned agent pools", self.settings) from err

    async def _collect(self, exists: Callable[[str, str], bool]) -> int:
        deleted = 0
        now = datetime.now(UTC)
        async for pool in self.arm.agent_pools.list(
            self.settings.resource_group, self.settings.cluster_name
        ):
            labels = _labels(pool)
            workspace = labels.get(LABEL_WORKSPACE)
            namespace = labels.get(LABEL_WORKSPACE_NAMESPACE, "")
            if not workspace or LABEL_NODEPOOL not in labels or exists(namespace, workspace):
                continue
            try:
                created = datetime.strptime(labels.get(LABEL_CREATION, ""), CREATION_LAYOUT)
                age = (now - created.replace(tzinfo=UTC)).total_seconds()
            except ValueError:
                age = float("inf")
            if age < self.settings.gc_grace:
                continue
            name = str(pool.get("name"))
            if await self._delete(name, _state(pool)) is not None:
                log.info(
                    "aks_orphan_pool_deleted", pool=name, workspace=workspace, namespace=namespace
                )
                deleted += 1
        return deleted

    # -- pools ----------------------------------------------------------------------------

    async def _pool(self, name: str, request: NodeRequest) -> _Pool:
        poller = self._creating.get(name)
        if poller is not None:
            followed = await self._follow(name, poller)
            if followed is not None:
                return followed
        try:
            pool = await self.arm.agent_pools.get(
                self.settings.resource_group, self.settings.cluster_name, name
            )
        except ResourceNotFoundError:
            return await self._create(name, request)
        except AzureError as err:
            raise classify(err, f"read agent pool {name}", self.settings) from err
        state = _state(pool)
        if state == "Failed":
            failure = pool_failure(name, _error(pool), self.settings)
            log.warning(
                "aks_agent_pool_failed", pool=name, reason=failure.reason, cause=failure.cause
            )
            await self._delete(name, state)
            raise failure
        return _Pool(state, _error(pool))

    async def _follow(self, name: str, poller: AsyncLROPoller[Any]) -> _Pool | None:
        """Wait (at most ``lro_wait``) on the create operation: the pool it produced, still
        ``Creating``, or None when it failed (the pool's ``provisioningError`` says why)."""
        result: Any = None
        try:
            with anyio.move_on_after(self.settings.lro_wait):
                result = await poller.result()
        except HttpResponseError:
            self._creating.pop(name, None)
            return None
        if not poller.done():
            return _Pool("Creating")
        self._creating.pop(name, None)
        state = _state(result)
        return None if state == "Failed" else _Pool(state, _error(result))

    async def _create(self, name: str, request: NodeRequest) -> _Pool:
        body = AgentPool(
            agent_pool_body(request, default_family=self.settings.default_node_image_family)
        )
        try:
            poller = await self.arm.agent_pools.begin_create_or_update(
                self.settings.resource_group,
                self.settings.cluster_name,
                name,
                body,
                polling_interval=self.settings.poll_interval,
            )
        except HttpResponseError as err:
            if err.status_code == 409 and _IN_PROGRESS_CREATE in arm_code(err)[1]:
                log.info("aks_agent_pool_adopted", pool=name, state="Creating")
                return _Pool("Creating")
            raise classify(err, f"create agent pool {name}", self.settings) from err
        except AzureError as err:
            raise classify(err, f"create agent pool {name}", self.settings) from err
        self.stats.created += 1
        log.info(
            "aks_agent_pool_create_started",
            pool=name,
            vm_size=request.instance_type,
            workspace=request.workspace,
            namespace=request.namespace,
        )
        self._creating[name] = poller
        followed = await self._follow(name, poller)
        return followed if followed is not None else await self._pool(name, request)

    async def _delete(self, name: str, state: str) -> AsyncLROPoller[None] | None:
        """Start deleting ``name`` unless it is already being deleted or busy (then None)."""
        if state == "Deleting":
            return None
        try:
            poller = await self.arm.agent_pools.begin_delete(
                self.settings.resource_group,
                self.settings.cluster_name,
                name,
                polling_interval=self.settings.poll_interval,
            )
        except ResourceNotFoundError:
            return None
        except HttpResponseError as err:
            if err.status_code == 409:
                return None  # an operation is still running on it: the next pass deletes it
            raise classify(err, f"delete agent pool {name}", self.settings) from err
        except AzureError as err:
            raise classify(err, f"delete agent pool {name}", self.settings) from err
        self.stats.deleted += 1
        log.info("aks_agent_pool_delete_started", pool=name)
        return poller

    # -- nodes ----------------------------------------------------------------------------

    async def _observe(
        self, request: NodeRequest, pools: Mapping[str, _Pool]
    ) -> tuple[tuple[ProvisionedNode, ...], ProvisioningError | None]:
        joined: dict[str, Mapping[str, Any]] = {}
        if any(p.state == "Succeeded" for p in pools.values()):
            found = await self.kube.list(
                NODES, label_selector=workspace_selector(request.namespace, request.workspace)
            )
            for item in found.items:
                labels = (item.get("metadata") or {}).get("labels") or {}
                owner = next((labels[k] for k in _POOL_LABELS if k in labels), None)
                if owner is not None:
                    joined[owner] = item
        nodes = []
        timeout: ProvisioningError | None = None
        now = self._now()
        for name, pool in pools.items():
            node = joined.get(name)
            if pool.state != "Succeeded":
                waiting = f"agent pool {name} is {pool.state}"
                nodes.append(
                    observe_node(name, None, instance_type=request.instance_type, waiting=waiting)
                )
                continue
            if node is None:
                since = self._unjoined_since.setdefault(name, now)
                if now - since >= self.settings.join_timeout and timeout is None:
                    timeout = ProvisioningError(
                        r.PROVISIONING_TIMEOUT,
                        f"agent pool {name} succeeded {now - since:.0f}s ago but its node never "
                        "joined the cluster; replacing the pool",
                        fix=r.FIXES[r.PROVISIONING_TIMEOUT],
                        retry_after=self.settings.failed_pool_retry,
                    )
                    self._unjoined_since.pop(name, None)
                    await self._delete(name, pool.state)
            else:
                self._unjoined_since.pop(name, None)
            nodes.append(
                observe_node(
                    name,
                    node,
                    instance_type=request.instance_type,
                    waiting=f"agent pool {name} succeeded; waiting for its node to join",
                )
            )
        return tuple(nodes), timeout

    # -- backoff --------------------------------------------------------------------------

    def _block(self, key: tuple[str, str], error: ProvisioningError) -> None:
        if not error.retry_after:
            return
        until = self._now() + error.retry_after
        if error.reason == r.THROTTLED:
            self._throttled = (until, error)  # ARM throttles the whole subscription
        else:
            self._blocked[key] = (until, error)
        log.warning(
            "aks_provisioning_backoff",
            reason=error.reason,
            cause=error.cause,
            retry_after=error.retry_after,
            workspace=key[1],
            namespace=key[0],
        )

    def _waiting(self, key: tuple[str, str]) -> ProvisioningError | None:
        """The error to report again while its backoff runs (no ARM call meanwhile)."""
        now = self._now()
        for entry in (self._throttled, self._blocked.get(key)):
            if entry is None or now >= entry[0]:
                continue
            until, err = entry
            return ProvisioningError(
                err.reason,
                err.message,
                cause=err.cause,
                retry_after=until - now,
                retryable=err.retryable,
            )
        self._blocked.pop(key, None)
        return None
