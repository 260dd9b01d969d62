"""KAITO on the in-process cluster: API server, CRDs, admission webhooks, manager, fake nodes.

Top layer. This is what ``kaito up`` runs and what the integration tests and platform teams' CI
use: everything a real installation has, in one process, with simulated GPU nodes.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import attrs
import structlog

from kaito.api import ValidationContext, workspace_crd
from kaito.cluster import Cluster, Kubelet, start_cluster
from kaito.engine import KubeClient, Manager, load_client
from kaito.operator import build_manager, controller_settings
from kaito.options import ManagerOptions
from kaito.tls import generate_serving_certificate
from kaito.webhooks.server import WebhookServer, webhook_configurations
from kaito_provisioners.fake import FakeProvisioner

__all__ = ("Embedded", "embedded_kaito")

log = structlog.get_logger(__name__)


@attrs.frozen
class Embedded:
    """A running embedded KAITO: the cluster, the manager, the fake provisioner, a kubeconfig."""

    cluster: Cluster
    manager: Manager
    provisioner: FakeProvisioner
    client: KubeClient
    kubeconfig: Path
    webhook_url: str | None


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
) -> AsyncIterator[Embedded]:
    """Run KAITO on an in-process cluster for the duration of the block.

    The manager runs without leader election and with probe and metrics servers only where
    ``options`` ask for them; the webhook server listens on a free loopback port with a fresh CA
    that the webhook configurations trust. ``tls`` and ``authorization`` are
    :func:`~kaito.cluster.start_cluster`'s (``kaito up`` serves TLS with RBAC, so only the owner
    of the kubeconfig can use the cluster).
    """
    options = options or ManagerOptions(metrics_address=None, probe_address=None)
    options = attrs.evolve(options, fake_node_delay=node_delay)
    async with start_cluster(
        port=port,
        crds=[workspace_crd()],
        kubelet=kubelet,
        tls=tls,
        authorization=authorization,
    ) as cluster:
        await cluster.create_namespace(options.release_namespace)
        with tempfile.TemporaryDirectory(prefix="kaito-up-") as scratch:
            kubeconfig = Path(kubeconfig_out or Path(scratch) / "kubeconfig")
            cluster.write_kubeconfig(kubeconfig)
            client = await load_client(str(kubeconfig))
            try:
                provisioner = FakeProvisioner(client, delay=node_delay)
                manager = build_manager(options, client, provisioner)
                async with anyio.create_task_group() as tg:
                    webhook_url = None
                    if webhooks:
                        webhook_url = await _start_webhooks(tg, cluster, client, options)
                    tg.start_soon(manager.run)
                    with anyio.fail_after(60):
                        await manager.started.wait()
                        await manager.informers.wait_synced()
                    log.info("kaito_embedded_ready", url=cluster.url, kubeconfig=str(kubeconfig))
                    try:
                        yield Embedded(
                            cluster, manager, provisioner, client, kubeconfig, webhook_url
                        )
                    finally:
                        manager.stop()
                        tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await client.close()


async def _start_webhooks(
    tg: anyio.abc.TaskGroup, cluster: Cluster, client: KubeClient, options: ManagerOptions
) -> str:
    settings = controller_settings(options)
    certificate = generate_serving_certificate(["127.0.0.1", "localhost"])
    server = WebhookServer(
        client,
        ValidationContext(
            node_auto_provisioning=settings.node_auto_provisioning,
            vllm_enabled=settings.vllm_enabled,
            cloud=settings.cloud,
            release_namespace=settings.release_namespace,
            allow_local_urls=settings.allow_local_urls,
        ),
        certificate,
        host="127.0.0.1",
        port=0,
    )
    bound = await tg.start(server.run)
    url = f"https://127.0.0.1:{bound}"
    for config in webhook_configurations(ca_pem=certificate.ca.cert_pem, url=url):
        await cluster.client.create(config)
    return url
