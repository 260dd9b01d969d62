"""KAITO on the in-process cluster: API server, CRDs, admission webhooks, manager, fake nodes.

Top layer. This is what ``kaito up`` runs and what the integration tests and platform teams' CI
use: everything a real installation has, in one process, with simulated GPU nodes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import structlog

from kaito.api import workspace_crd
from kaito.cluster import Cluster, Kubelet, Storage, start_cluster
from kaito.engine import KubeClient, Manager, load_client
from kaito.operator import WebhookServing, build_operator, make_provisioner
from kaito.options import ManagerOptions
from kaito.tls import generate_serving_certificate
from kaito.webhooks import webhook_configurations
from kaito_provisioners import NodeProvisioner
from kaito_provisioners.fake import FakeProvisioner

__all__ = ("Embedded", "embedded_kaito")

log = structlog.get_logger(__name__)


@attrs.frozen
class Embedded:
    """A running embedded KAITO: the cluster, the manager, the provisioner, a kubeconfig.

    With ``--node-provisioner aks`` the AKS emulator (``azure``) plays the cloud; with
    ``karpenter`` or ``azure-gpu-provisioner`` the simulated Karpenter (``karpenter``) does.
    """

    cluster: Cluster
    manager: Manager
    provisioner: Any
    client: KubeClient
    kubeconfig: Path
    webhook_url: str | None
    azure: Any = None
    karpenter: Any = None


@asynccontextmanager
async def embedded_kaito(
    *,
    port: int = 0,
    kubeconfig_out: str | Path | None = None,
    options: ManagerOptions | None = None,
    webhooks: bool = True,
    kubelet: Kubelet | None = None,
    node_delay: float = 0.0,
    tls: bool = False,
    authorization: str = "AlwaysAllow",
    store: Storage | None = None,
    system_node: bool = False,
) -> AsyncIterator[Embedded]:
    """Run KAITO on an in-process cluster for the duration of the block.

    The operator is built as ``kaito manager`` builds it (:func:`~kaito.operator.build_operator`)
    and runs without leader election and with probe and metrics servers only where ``options``
    ask for them; its webhook server listens on a free loopback port with a fresh CA that the
    webhook configurations trust. ``tls`` and ``authorization`` are
    :func:`~kaito.cluster.start_cluster`'s (``kaito up`` serves TLS with RBAC, so only the owner
    of the kubeconfig can use the cluster). ``store`` (a durable
    :class:`~kaito.cluster.SqliteStorage` for ``kaito up --data-dir``) and ``system_node`` are
    passed on too; on a store that already holds a cluster, the webhook configurations are
    updated to the new webhook server and CA.
    """
    options = options or ManagerOptions(metrics_address=None, probe_address=None)
    options = attrs.evolve(options, fake_node_delay=node_delay)
    certificate = generate_serving_certificate(["127.0.0.1", "localhost"]) if webhooks else None
    async with start_cluster(
        port=port,
        crds=[workspace_crd()],
        kubelet=kubelet,
        tls=tls,
        authorization=authorization,
        store=store,
        system_node=system_node,
    ) as cluster:
        await cluster.create_namespace(options.release_namespace)
        with tempfile.TemporaryDirectory(prefix="kaito-up-") as scratch:
            kubeconfig = Path(kubeconfig_out or Path(scratch) / "kubeconfig")
            cluster.write_kubeconfig(kubeconfig)
            client = await load_client(str(kubeconfig))
            try:
                async with _node_backend(cluster, client, options, node_delay) as backend:
                    provisioner, azure, karpenter = backend
                    operator = build_operator(
                        options,
                        client,
                        provisioner,
                        webhooks=None
                        if certificate is None
                        else WebhookServing(certificate, host="127.0.0.1", port=0),
                    )
                    manager = operator.manager
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(manager.run)
                        with anyio.fail_after(60):
                            await manager.started.wait()  # the webhook server is listening
                            webhook_url = None
                            if operator.webhooks is not None and certificate is not None:
                                webhook_url = f"https://127.0.0.1:{operator.webhooks.bound_port}"
                                for config in webhook_configurations(
                                    ca_pem=certificate.ca.cert_pem, url=webhook_url
                                ):
                                    await cluster.client.apply(
                                        config, field_manager="kaito-embedded"
                                    )
                            await manager.informers.wait_synced()
                        log.info("kaito_embedded_ready", url=cluster.url,
                                 kubeconfig=str(kubeconfig))  # fmt: skip
                        try:
                            yield Embedded(cluster, manager, provisioner, client, kubeconfig,
                                           webhook_url, azure, karpenter)  # fmt: skip
                        finally:
                            manager.stop()
                            tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await client.close()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set process environment variables for the block (what ``DefaultAzureCredential`` reads)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@asynccontextmanager
async def _node_backend(
    cluster: Cluster, client: KubeClient, options: ManagerOptions, node_delay: float
) -> AsyncIterator[tuple[NodeProvisioner | None, Any, Any]]:
    """The provisioner ``options`` name, with the double that plays its cloud on this cluster:
    the AKS emulator for ``aks``, the simulated Karpenter for the NodeClaim backends."""
    name = options.node_provisioner
    if name == "aks":
        from kaito.cluster import AzureTimes, BootTimes, azure_emulator

        step = max(node_delay, 0.4)
        times = AzureTimes(create=step / 2, update=step / 4, delete=step / 4,
                           boot=BootTimes(step / 4, step / 4), poll_hint=1)  # fmt: skip
        async with azure_emulator(cluster, times=times) as azure:
            env = azure.env(workload_identity=True)
            with _environment({k: v for k, v in env.items() if k.startswith("AZURE_")}):
                from kaito_provisioners.aks import AksProvisioner, AksSettings

                # Snappier than a real cluster needs: someone is watching the table.
                settings = attrs.evolve(
                    AksSettings.from_env(env, arm_endpoint=azure.arm_url),
                    connection_verify=str(azure.ca_file),
                    default_node_image_family=options.default_node_image_family or "ubuntu",
                    poll_interval=1.0, lro_wait=1.0, human_retry=30.0, failed_pool_retry=5.0,
                    conflict_retry=5.0, recheck=1.0,
                )  # fmt: skip
                provisioner = AksProvisioner(settings, client)
                try:
                    yield provisioner, azure, None
                finally:
                    with anyio.CancelScope(shield=True):
                        await provisioner.aclose()
        return
    if name in ("karpenter", "azure-gpu-provisioner"):
        from kaito.cluster import BootTimes, KarpenterTimes, karpenter_simulator

        step = max(node_delay, 0.4)
        steps = KarpenterTimes(launch=step / 4, register=step / 4,
                               boot=BootTimes(step / 4, step / 4))  # fmt: skip
        async with karpenter_simulator(cluster, times=steps) as karpenter:
            yield make_provisioner(options, client), None, karpenter
        return
    if name == "fake":
        yield FakeProvisioner(client, delay=node_delay), None, None
        return
    yield make_provisioner(options, client), None, None
