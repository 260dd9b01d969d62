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

from kaito.api import workspace_crd
from kaito.cluster import Cluster, Kubelet, start_cluster
from kaito.engine import KubeClient, Manager, load_client
from kaito.operator import WebhookServing, build_operator
from kaito.options import ManagerOptions
from kaito.tls import generate_serving_certificate
from kaito.webhooks import webhook_configurations
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

    The operator is built as ``kaito manager`` builds it (:func:`~kaito.operator.build_operator`)
    and runs without leader election and with probe and metrics servers only where ``options``
    ask for them; its webhook server listens on a free loopback port with a fresh CA that the
    webhook configurations trust. ``tls`` and ``authorization`` are
    :func:`~kaito.cluster.start_cluster`'s (``kaito up`` serves TLS with RBAC, so only the owner
    of the kubeconfig can use the cluster).
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
    ) as cluster:
        await cluster.create_namespace(options.release_namespace)
        with tempfile.TemporaryDirectory(prefix="kaito-up-") as scratch:
            kubeconfig = Path(kubeconfig_out or Path(scratch) / "kubeconfig")
            cluster.write_kubeconfig(kubeconfig)
            client = await load_client(str(kubeconfig))
            try:
                provisioner = FakeProvisioner(client, delay=node_delay)
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
                                await cluster.client.create(config)
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
