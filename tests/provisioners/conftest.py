"""One harness per node backend: the in-process cluster with the Workspace CRD, the double that
plays the backend's cloud (none for ``fake``, the AKS emulator for ``aks``, the simulated
Karpenter for ``karpenter``), fresh provisioners for each manager (as a restarted process would
build), and faults named alike for all three."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from unittest.mock import patch

import anyio
import attrs
import pytest
import yaml

from kaito.api import workspace_crd
from kaito.cluster import (
    AzureEmulator,
    AzureTimes,
    BootTimes,
    Cluster,
    KarpenterSimulator,
    KarpenterTimes,
    StatusError,
    azure_emulator,
    karpenter_simulator,
    start_cluster,
)
from kaito.controllers import add_workspace_controller
from kaito.engine import KubeClient, Manager, load_client
from kaito.operator import controller_settings
from kaito.options import ManagerOptions
from kaito_provisioners import NodeProvisioner
from kaito_provisioners.aks import AksProvisioner, AksSettings
from kaito_provisioners.fake import FakeProvisioner
from kaito_provisioners.karpenter import KarpenterSettings, NodeClaimProvisioner

BACKENDS = ("fake", "aks", "karpenter")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WS_API = "kaito.sh/v1beta1"
Fault = Literal["quota", "capacity", "failed", "throttle"]

#: What each backend reports for each fault (its own words, as the cloud or Karpenter says it).
EXPECTED_REASON: dict[str, dict[str, str]] = {
    "fake": {"quota": "QuotaExceeded", "capacity": "SKUNotAvailable",
             "failed": "ProvisioningTimeout", "throttle": "Throttled"},
    "aks": {"quota": "QuotaExceeded", "capacity": "InsufficientCapacity",
            "failed": "AgentPoolFailed", "throttle": "Throttled"},
    "karpenter": {"quota": "QuotaExceeded", "capacity": "InsufficientCapacity",
                  "failed": "NodeNotRegistered", "throttle": "Throttled"},
}  # fmt: skip

AZURE_TIMES = AzureTimes(create=0.05, update=0.02, delete=0.05, boot=BootTimes(0.05, 0.05))
KARPENTER_TIMES = KarpenterTimes(
    launch=0.05, register=0.05, boot=BootTimes(0.05, 0.05), launch_retry=0.1,
    launch_timeout=5.0, registration_timeout=0.5, drain=0.02,
)  # fmt: skip
QUOTA_TEXT = (
    "creating instance, agentPool.BeginCreateOrUpdate failed: RESPONSE 400: 400 Bad Request "
    "ERROR CODE: QuotaExceeded: Operation could not be completed as it results in exceeding "
    "approved standardNCSv3Family Cores quota"
)


def example(rel: str, name: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / rel).read_text())
    if name:
        doc["metadata"]["name"] = name
    return doc


@attrs.define
class Backend:
    """A running backend double and how to build, inspect and break its provisioners."""

    name: str
    cluster: Cluster
    kube: KubeClient
    azure: AzureEmulator | None = None
    karpenter: KarpenterSimulator | None = None
    fake_failures: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)
    provisioners: list[Any] = attrs.field(factory=list)
    #: Options for the next AKS provisioner's ``ContainerServiceClient`` (used once).
    next_client_options: dict[str, Any] = attrs.field(factory=dict)

    def aks_settings(self) -> AksSettings:
        assert self.azure is not None
        return AksSettings(
            subscription_id=self.azure.subscription_id,
            resource_group=self.azure.resource_group,
            cluster_name=self.azure.cluster_name,
            arm_endpoint=self.azure.arm_url,
            connection_verify=str(self.azure.ca_file),
            poll_interval=0.05, lro_wait=0.2, human_retry=0.3, failed_pool_retry=0.3,
            conflict_retry=0.2, throttle_retry=0.3, join_timeout=2.0, gc_grace=0.0, recheck=0.1,
        )  # fmt: skip

    def provisioner(self, client: Any) -> NodeProvisioner:
        """A fresh provisioner, as a newly started manager builds it."""
        made: Any
        if self.name == "fake":
            made = FakeProvisioner(client, delay=0.05, timeout=0.5, recheck=0.1)
            for kind, scope in self.fake_failures:
                made.fail(kind, **scope)
        elif self.name == "aks":
            made = AksProvisioner(self.aks_settings(), client, **self.next_client_options)
            self.next_client_options = {}
        else:
            made = NodeClaimProvisioner(client, KarpenterSettings(capacity_retry=0.3, recheck=0.1))
        self.provisioners.append(made)
        return made  # type: ignore[no-any-return]

    async def claims(self, workspace: str) -> list[str]:
        """The backend's claims for ``workspace``: fake Nodes, agent pools or NodeClaims."""
        if self.name == "aks":
            assert self.azure is not None
            return sorted(n for n, p in self.azure.pools.items() if p.workspace == workspace)
        api, kind = ("karpenter.sh/v1", "NodeClaim") if self.name == "karpenter" else ("v1", "Node")
        found = await self.cluster.client.list(
            api, kind, label_selector=f"kaito.sh/workspace={workspace},karpenter.sh/nodepool=kaito"
        )
        return sorted(o["metadata"]["name"] for o in found)

    async def nodes(self, workspace: str) -> list[str]:
        found = await self.cluster.client.list(
            "v1", "Node", label_selector=f"kaito.sh/workspace={workspace}"
        )
        return sorted(o["metadata"]["name"] for o in found)

    def fail(self, fault: Fault, *, workspace: str | None = None) -> Callable[[], None]:
        """Inject ``fault`` (for one workspace, or all); returns what lifts it."""
        if self.name == "fake":
            kind = {"quota": "quota", "capacity": "capacity", "failed": "timeout"}.get(fault)
            if kind is None:  # throttling: the API server the fake writes Nodes through
                rule = self.cluster.faults.fail(429, retry_after=1, times=3, verb="list",
                                                resource="nodes")  # fmt: skip
                return rule.remove
            scope = {"workspace": workspace}
            self.fake_failures.append((kind, scope))
            for made in self.provisioners:
                made.fail(kind, **scope)

            def heal() -> None:
                self.fake_failures.remove((kind, scope))
                for made in self.provisioners:
                    made.heal()
                    for other, other_scope in self.fake_failures:
                        made.fail(other, **other_scope)

            return heal
        if self.name == "aks":
            assert self.azure is not None
            if fault == "throttle":  # a burst: the next three reads are refused
                return self.azure.faults.add("throttle", times=3, retry_after=1).lift
            if fault == "quota":  # a quota that is raised by itself a moment later
                return self.azure.faults.add("quota", workspace=workspace, duration=2.0).lift
            kind = {"capacity": "capacity", "failed": "pool_failed"}[fault]
            return self.azure.faults.add(kind, workspace=workspace).lift  # type: ignore[arg-type]
        assert self.karpenter is not None
        if fault == "throttle":
            rule = self.cluster.faults.fail(429, retry_after=1, times=3, verb="list",
                                            resource="nodeclaims")  # fmt: skip
            return rule.remove
        if fault == "quota":
            return self.karpenter.faults.add("launch_failed", workspace=workspace,
                                             message=QUOTA_TEXT).lift  # fmt: skip
        if fault == "capacity":
            return self.karpenter.faults.add("capacity", workspace=workspace).lift
        return self.karpenter.faults.add("never_register", workspace=workspace, times=1).lift

    async def aclose(self) -> None:
        for made in self.provisioners:
            closer = getattr(made, "aclose", None)
            if closer is not None:
                await closer()


@asynccontextmanager
async def running_backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """The cluster, the double and a real Kubernetes client, for one backend."""
    async with start_cluster(crds=[workspace_crd()]) as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        kube = await load_client(str(tmp_path / "kubeconfig"))
        try:
            if name == "aks":
                async with azure_emulator(cluster, times=AZURE_TIMES) as azure:
                    env = azure.env(workload_identity=True)
                    with patch.dict(
                        os.environ, {k: v for k, v in env.items() if k.startswith("AZURE_")}
                    ):
                        backend = Backend(name, cluster, kube, azure=azure)
                        try:
                            yield backend
                        finally:
                            await backend.aclose()
            elif name == "karpenter":
                async with karpenter_simulator(cluster, times=KARPENTER_TIMES) as karpenter:
                    yield Backend(name, cluster, kube, karpenter=karpenter)
            else:
                yield Backend(name, cluster, kube)
        finally:
            with anyio.CancelScope(shield=True):
                await kube.close()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with running_backend(request.param, tmp_path) as running:
        yield running


@asynccontextmanager
async def running_manager(
    backend: Backend, wrap: Callable[[anyio.CancelScope], Any] | None = None
) -> AsyncIterator[anyio.CancelScope]:
    """A manager with the Workspace controller and a fresh provisioner; ``wrap`` may wrap the
    client it writes through (to cut it at a write)."""
    async with anyio.create_task_group() as tg:
        client = wrap(tg.cancel_scope) if wrap else backend.kube
        manager = Manager(backend.kube, name="kaito-test")
        add_workspace_controller(
            manager, client, backend.provisioner(client), controller_settings(ManagerOptions())
        )
        tg.start_soon(manager.run)
        yield tg.cancel_scope
        tg.cancel_scope.cancel()


async def get_ws(backend: Backend, name: str) -> dict[str, Any] | None:
    try:
        return await backend.cluster.client.get(WS_API, "Workspace", name, "default")
    except StatusError as err:
        if err.code == 404:
            return None
        raise


def conditions(ws: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((ws or {}).get("status") or {}).get("conditions") or []}


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, within: float = 20.0, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something truthy (bounded)."""
    last: Any = None
    try:
        with anyio.fail_after(within):
            while True:
                last = await probe()
                if last:
                    return last
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}") from None


async def wait_condition(
    backend: Backend, name: str, type_: str, status: str = "True", *, reason: str | None = None,
    within: float = 20.0,
) -> dict[str, Any]:  # fmt: skip
    async def probe() -> dict[str, Any] | None:
        ws = await get_ws(backend, name)
        cond = conditions(ws).get(type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return ws
        return None

    found: dict[str, Any] = await wait_for(
        probe, within=within, what=f"{name} {type_}={status} {reason or ''}"
    )
    return found


async def finished(backend: Backend, name: str) -> bool:
    """Ready (inference) or Succeeded (tuning)."""
    ws = await get_ws(backend, name)
    return ((ws or {}).get("status") or {}).get("state") in ("Ready", "Succeeded")
