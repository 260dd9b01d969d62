"""The AKS emulator: agent pools of one managed cluster behind an emulated ARM endpoint, an
emulated Entra tenant, both over TLS on loopback with a generated CA, and the Nodes of succeeded
pools joining the in-process cluster."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import attrs
import structlog
from aiohttp import web
from anyio.abc import TaskGroup, TaskStatus

from kaito.cluster._azure._arm import OPERATIONS_API_VERSION, SUPPORTED_API_VERSIONS, ArmFrontEnd
from kaito.cluster._azure._entra import CLUSTER_ISSUER, EntraTenant, FederatedCredential
from kaito.cluster._azure._faults import AzureFaults
from kaito.cluster._azure._pools import (
    AgentPool,
    ArmError,
    Operation,
    parse_taint,
    stamp,
    validate_pool_body,
)
from kaito.cluster._azure._vm import BootTimes, VirtualMachineNodes, gpu_count, node_name_for
from kaito.cluster._client import LocalClient
from kaito.tls import generate_serving_certificate

if TYPE_CHECKING:
    from kaito.cluster._cluster import Cluster

__all__ = ("AzureEmulator", "AzureTimes", "azure_emulator")

log = structlog.get_logger(__name__)

#: The service account the manager runs as (its projected token is exchanged for Entra tokens).
MANAGER_SERVICE_ACCOUNT: Final = "system:serviceaccount:kaito-workspace:kaito-workspace"
_FAMILY: Final = re.compile(r"^Standard_([A-Za-z]+)\d*([A-Za-z]*)(?:_(.*))?$")

WriteHook = Callable[[str, str], Awaitable[None]]


@attrs.frozen
class AzureTimes:
    """How long the emulated operations take, in seconds (small in tests)."""

    create: float = 2.0
    update: float = 0.5
    delete: float = 1.0
    boot: BootTimes = attrs.field(factory=BootTimes)
    #: ``Retry-After`` on long-running operation responses (0: none; clients use their own).
    poll_hint: int = 0


def _quota_family(vm_size: str) -> str:
    match = _FAMILY.match(vm_size)
    if not match:
        return f"{vm_size}Family"
    letters, suffix, rest = match.groups()
    return f"standard{letters.upper()}{suffix.upper()}{(rest or '').replace('_', '')}Family"


class AzureEmulator:
    """One subscription, resource group and AKS cluster; its agent pools and operations.

    Tests read ``pools``, ``requests`` (ARM requests by kind) and ``tenant.issued`` (tokens),
    inject ``faults``, grant or revoke roles, and may hook writes (``before_write`` /
    ``after_write`` are awaited around each PUT or DELETE of an agent pool, to cut a client
    before or after ARM applied it).
    """

    def __init__(
        self,
        client: LocalClient,
        *,
        times: AzureTimes,
        location: str = "eastus",
        subscription_id: str | None = None,
        resource_group: str = "kaito-rg",
        cluster_name: str = "kaito-aks",
        tenant: EntraTenant | None = None,
    ) -> None:
        self.times = times
        self.location = location
        self.subscription_id = subscription_id or str(uuid.uuid4())
        self.resource_group = resource_group
        self.cluster_name = cluster_name
        self.tenant = tenant or EntraTenant()
        self.faults = AzureFaults()
        self.pools: dict[str, AgentPool] = {}
        self.operations: dict[str, Operation] = {}
        self.requests: Counter[str] = Counter()
        #: Agent pools created (not updated, not adopted), by name.
        self.created: Counter[str] = Counter()
        #: The api-versions clients sent, and the ones this resource provider serves.
        self.api_versions: Counter[str] = Counter()
        self.served_api_versions: tuple[str, ...] = SUPPORTED_API_VERSIONS
        self.role_assignments: set[str] = set()
        self.page_size = 100
        self.before_write: WriteHook | None = None
        self.after_write: WriteHook | None = None
        self.arm_url = ""
        self.authority_host = ""
        self.ca_file = Path()
        self.token_file = Path()
        self.client_id = self.tenant.register_app(secret=f"s3cr3t-{uuid.uuid4()}")
        self.tenant.federate(
            self.client_id, FederatedCredential(CLUSTER_ISSUER, MANAGER_SERVICE_ACCOUNT)
        )
        self.grant(self.client_id)
        self._vms = VirtualMachineNodes(client, times.boot)
        self._tasks: TaskGroup | None = None

    # -- identities and roles -------------------------------------------------------------

    @property
    def client_secret(self) -> str:
        """The default application's client secret."""
        secret = self.tenant.secret_of(self.client_id)
        assert secret is not None
        return secret

    def grant(self, client_id: str) -> None:
        """Assign the application a role allowing agent pool reads and writes on the cluster."""
        self.role_assignments.add(self.tenant.object_id(client_id))

    def revoke(self, client_id: str) -> None:
        """Remove the application's role assignment."""
        self.role_assignments.discard(self.tenant.object_id(client_id))

    def env(self, *, workload_identity: bool = False) -> dict[str, str]:
        """Environment variables for ``DefaultAzureCredential`` and the AKS backend.

        With ``workload_identity`` the credential is the projected service account token file
        (as the workload identity webhook sets it in a pod); otherwise a client secret.
        """
        env = {
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "AZURE_TENANT_ID": self.tenant.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "ARM_SUBSCRIPTION_ID": self.subscription_id,
            "ARM_RESOURCE_GROUP": self.resource_group,
            "AZURE_CLUSTER_NAME": self.cluster_name,
            "LOCATION": self.location,
        }
        if workload_identity:
            env["AZURE_FEDERATED_TOKEN_FILE"] = str(self.token_file)
        else:
            env["AZURE_CLIENT_SECRET"] = self.client_secret
        return env

    # -- URLs -----------------------------------------------------------------------------

    @property
    def cluster_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{self.cluster_name}"
        )

    def pool_id(self, name: str) -> str:
        return f"{self.cluster_id}/agentPools/{name}"

    def public_url(self, path_qs: str) -> str:
        return f"{self.arm_url}{path_qs}"

    def operation_url(self, op_id: str, *, result: bool = False) -> str:
        kind = "operationresults" if result else "operations"
        return (
            f"{self.arm_url}/subscriptions/{self.subscription_id}/providers/"
            f"Microsoft.ContainerService/locations/{self.location}/{kind}/{op_id}"
            f"?api-version={OPERATIONS_API_VERSION}"
        )

    def retry_hint(self) -> dict[str, str]:
        return {"Retry-After": str(self.times.poll_hint)} if self.times.poll_hint >= 1 else {}

    async def hook(self, when: Literal["before", "after"], method: str, name: str) -> None:
        hook = self.before_write if when == "before" else self.after_write
        if hook is not None:
            await hook(method, name)

    # -- the resource provider ------------------------------------------------------------

    def _tasks_or_fail(self) -> TaskGroup:
        if self._tasks is None:
            raise RuntimeError("the emulator is not running (use azure_emulator())")
        return self._tasks

    def _current_operation(self, pool: str) -> Operation | None:
        for operation in reversed(list(self.operations.values())):
            if operation.pool == pool:
                return operation
        return None

    def _in_progress(self, pool: AgentPool) -> ArmError:
        operation = self._current_operation(pool.name)
        verb = {"Creating": "create", "Updating": "update", "Deleting": "delete"}[pool.state]
        started = operation.started if operation else stamp()
        return ArmError(
            409,
            "OperationNotAllowed",
            f"Operation is not allowed because there's "
            f"an in progress {verb} node pool operation started at {started}. Please "
            "wait for it to finish before starting a new operation. See "
            "https://aka.ms/aks-pending-operation for more details",
        )

    def put_pool(self, name: str, body: Any) -> tuple[int, AgentPool, Operation]:
        """Create or update an agent pool; the operation continues in the background."""
        props = validate_pool_body(name, body)
        instance_type = str(props["vmSize"])
        workspace = str((props.get("nodeLabels") or {}).get("kaito.sh/workspace", ""))
        existing = self.pools.get(name)
        if existing is not None and existing.busy:
            raise self._in_progress(existing)
        scope = {"instance_type": instance_type, "workspace": workspace}
        conflict = self.faults.match(("conflict",), **scope)
        if conflict is not None:
            raise ArmError(
                409,
                "OperationNotAllowed",
                conflict.message
                or "Operation is not "
                "allowed because there's an in progress upgrade managed cluster "
                f"operation on '{self.cluster_name}' started at {stamp()}. Please wait "
                "for it to finish before starting a new operation. See "
                "https://aka.ms/aks-pending-operation for more details",
            )
        refused = self.faults.match(("quota", "sku_unavailable"), **scope)
        if refused is not None and refused.kind == "quota":
            cores = max(gpu_count(instance_type), 1) * 24 * int(props.get("count", 1) or 1)
            raise ArmError(
                400,
                "QuotaExceeded",
                refused.message
                or f"Preflight validation check "
                f"for resource(s) for container service {self.cluster_name} in "
                f"resource group MC_{self.resource_group}_{self.cluster_name}_"
                f"{self.location} failed. Message: Operation could not be completed as "
                f"it results in exceeding approved {_quota_family(instance_type)} "
                "Cores quota. Additional details - Deployment Model: Resource "
                f"Manager, Location: {self.location}, Current Limit: 0, Current "
                f"Usage: 0, Additional Required: {cores}, (Minimum) New Limit "
                f"Required: {cores}. Submit a request for Quota increase at "
                "https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/"
                "UsageAndQuota.ReactView by specifying parameters listed in the "
                "'Details' section for deployment to succeed.",
            )
        if refused is not None:
            raise ArmError(
                400,
                "SkuNotAvailable",
                refused.message
                or f"The requested VM size "
                f"'{instance_type}' is currently not available in location "
                f"'{self.location}'. Please try another size or deploy to a different "
                "location or different zone. See https://aka.ms/azureskunotavailable "
                "for details.",
            )
        tasks = self._tasks_or_fail()
        if existing is not None and existing.state == "Succeeded":
            existing.properties = {**props, "count": existing.properties.get("count", 1)}
            existing.state = "Updating"
            operation = Operation(name, "update")
            self.operations[operation.id] = operation
            tasks.start_soon(self._update, existing, operation)
            return 200, existing, operation
        pool = AgentPool(name, props)
        self.pools[name] = pool
        self.created[name] += 1
        operation = Operation(name, "create")
        self.operations[operation.id] = operation
        tasks.start_soon(self._provision, pool, operation)
        log.info("aks_agent_pool_creating", pool=name, vm_size=instance_type, workspace=workspace)
        return (200 if existing is not None else 201), pool, operation

    def delete_pool(self, name: str) -> Operation | None:
        """Start deleting an agent pool (``None`` when there is none)."""
        pool = self.pools.get(name)
        if pool is None:
            return None
        if pool.state == "Deleting":
            return self._current_operation(name)
        if pool.busy:
            raise self._in_progress(pool)
        pool.state = "Deleting"
        operation = Operation(name, "delete")
        self.operations[operation.id] = operation
        self._tasks_or_fail().start_soon(self._remove, pool, operation)
        log.info("aks_agent_pool_deleting", pool=name)
        return operation

    async def _provision(self, pool: AgentPool, operation: Operation) -> None:
        await anyio.sleep(self.times.create)
        if self.pools.get(pool.name) is not pool:
            return
        scope = {"instance_type": pool.instance_type, "workspace": pool.workspace}
        failure = self.faults.match(("capacity", "pool_failed"), **scope)
        if failure is not None:
            if failure.kind == "capacity":
                error = {
                    "code": "AllocationFailed",
                    "message": failure.message
                    or "Allocation "
                    "failed. We do not have sufficient capacity for the requested VM size "
                    f"{pool.instance_type} in region {self.location}. Read more about "
                    "improving likelihood of allocation success at "
                    "http://aka.ms/allocation-guidance",
                }
            else:
                error = {
                    "code": "VMExtensionProvisioningError",
                    "message": failure.message
                    or "Unable to establish outbound connection from agents, please see "
                    "https://aka.ms/aks-required-ports-and-addresses for more information. "
                    "Details: instance 0 has extension error details : {vmssCSE error "
                    "messages : {vmssCSE exit status=50}}",
                }
            pool.state, pool.error = "Failed", error
            operation.finish(error)
            log.info("aks_agent_pool_failed", pool=pool.name, code=error["code"])
            return
        if self.faults.match(("never_join",), **scope) is None:
            props = pool.properties
            node = node_name_for(pool.name, self.cluster_id)
            pool.node_name = node
            await self._tasks_or_fail().start(self._boot, pool, node, props)
        pool.state, pool.error = "Succeeded", None
        operation.finish()
        log.info("aks_agent_pool_succeeded", pool=pool.name, node=pool.node_name)

    async def _boot(
        self,
        pool: AgentPool,
        node: str,
        props: dict[str, Any],
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        scope = {"instance_type": pool.instance_type, "workspace": pool.workspace}
        plugin = self.faults.match(("no_device_plugin",), **scope) is None
        vm_size = pool.instance_type
        os_sku = str(props.get("osSKU", "Ubuntu"))
        mc_group = f"MC_{self.resource_group}_{self.cluster_name}_{self.location}"
        scale_set = node.removesuffix("000000")
        labels = {
            "agentpool": pool.name,
            "kubernetes.azure.com/agentpool": pool.name,
            "kubernetes.azure.com/cluster": mc_group,
            "kubernetes.azure.com/mode": str(props.get("mode", "User")).lower(),
            "kubernetes.azure.com/role": "agent",
            "kubernetes.azure.com/os-sku": os_sku,
            "kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202511.01.0",
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/role": "agent",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": vm_size,
            "beta.kubernetes.io/instance-type": vm_size,
            "topology.kubernetes.io/region": self.location,
            "topology.kubernetes.io/zone": "0",
            "failure-domain.beta.kubernetes.io/region": self.location,
            "failure-domain.beta.kubernetes.io/zone": "0",
            **({"kubernetes.azure.com/accelerator": "nvidia"} if gpu_count(vm_size) else {}),
            **(props.get("nodeLabels") or {}),
        }
        provider_id = (
            f"azure:///subscriptions/{self.subscription_id}/resourceGroups/{mc_group.lower()}"
            f"/providers/Microsoft.Compute/virtualMachineScaleSets/{scale_set}/virtualMachines/0"
        )
        await self._vms.boot(
            node,
            instance_type=vm_size,
            labels=labels,
            taints=[parse_taint(t) for t in props.get("nodeTaints") or ()],
            provider_id=provider_id,
            device_plugin=plugin,
            task_status=task_status,
        )

    async def _update(self, pool: AgentPool, operation: Operation) -> None:
        await anyio.sleep(self.times.update)
        if self.pools.get(pool.name) is pool and pool.state == "Updating":
            pool.state = "Succeeded"
        operation.finish()

    async def _remove(self, pool: AgentPool, operation: Operation) -> None:
        await anyio.sleep(self.times.delete)
        if pool.node_name:
            await self._vms.delete(pool.node_name)
        if self.pools.get(pool.name) is pool:
            del self.pools[pool.name]
        operation.finish()
        log.info("aks_agent_pool_deleted", pool=pool.name)


async def _serve(app: web.Application, ssl_context: Any) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, int(runner.addresses[0][1])


@asynccontextmanager
async def azure_emulator(
    cluster: Cluster,
    *,
    times: AzureTimes | None = None,
    location: str = "eastus",
    resource_group: str = "kaito-rg",
    cluster_name: str = "kaito-aks",
    subscription_id: str | None = None,
) -> AsyncIterator[AzureEmulator]:
    """Run the AKS emulator for ``cluster`` (HTTPS on two loopback ports) during the block.

    Leaving the block stops both servers and every operation in flight; Nodes already joined
    stay in the cluster.
    """
    emulator = AzureEmulator(
        cluster.client,
        times=times or AzureTimes(),
        location=location,
        subscription_id=subscription_id,
        resource_group=resource_group,
        cluster_name=cluster_name,
    )
    certificate = generate_serving_certificate(["127.0.0.1", "localhost"])
    front = ArmFrontEnd(emulator)
    arm = web.Application(client_max_size=1024 * 1024)
    arm.router.add_route("*", "/{tail:.*}", front.handle)
    entra = web.Application(client_max_size=64 * 1024)
    entra.router.add_post("/{tenant}/oauth2/v2.0/token", emulator.tenant.handle_token)
    runners: list[web.AppRunner] = []
    with tempfile.TemporaryDirectory(prefix="kaito-azure-") as scratch:
        emulator.ca_file = Path(scratch, "ca.pem")
        await anyio.Path(emulator.ca_file).write_bytes(certificate.ca.cert_pem)
        emulator.token_file = Path(scratch, "azure-identity-token")
        await anyio.Path(emulator.token_file).write_text(
            emulator.tenant.service_account_token(MANAGER_SERVICE_ACCOUNT)
        )
        try:
            async with anyio.create_task_group() as tasks:
                emulator._tasks = tasks
                context = certificate.server_context()
                arm_runner, arm_port = await _serve(arm, context)
                runners.append(arm_runner)
                entra_runner, entra_port = await _serve(entra, context)
                runners.append(entra_runner)
                emulator.arm_url = f"https://127.0.0.1:{arm_port}"
                emulator.authority_host = f"https://127.0.0.1:{entra_port}"
                log.info(
                    "azure_emulator_started",
                    arm=emulator.arm_url,
                    authority=emulator.authority_host,
                )
                try:
                    yield emulator
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            emulator._tasks = None
            with anyio.CancelScope(shield=True):
                for runner in runners:
                    await runner.cleanup()
