"""The public entry point: start an in-process cluster (HTTP API server, storage, simulated
controllers) and hand back a :class:`Cluster` handle; or run one in a background thread."""

from __future__ import annotations

import copy
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import structlog
from aiohttp import web

from kaito.cluster._admission import WebhookAdmission
from kaito.cluster._builtins import builtin_types
from kaito.cluster._client import LocalClient, _documents
from kaito.cluster._controllers import Controllers, run_controllers
from kaito.cluster._crd import crd_resource_type
from kaito.cluster._crd_registry import CrdRegistry
from kaito.cluster._errors import StatusError
from kaito.cluster._faults import Faults
from kaito.cluster._http import ApiHandler, ServerInfo
from kaito.cluster._json import Obj
from kaito.cluster._kubeconfig import build_kubeconfig, write_kubeconfig
from kaito.cluster._meta import TimeSource, system_clock
from kaito.cluster._resource_types import Catalog
from kaito.cluster._rest import RestApi
from kaito.cluster._sim import Kubelet, node_object
from kaito.cluster._store import MemoryStorage, Storage
from kaito.tls import ServingCertificate, generate_serving_certificate

__all__ = ("Cluster", "ThreadedCluster", "cluster_in_thread", "start_cluster")

log = structlog.get_logger(__name__)
T = TypeVar("T")
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Cluster:
    """A running in-process cluster (from :func:`start_cluster`)."""

    def __init__(
        self,
        *,
        url: str,
        rest: RestApi,
        faults: Faults,
        token: str | None,
        certificate: ServingCertificate | None,
        admission: WebhookAdmission,
    ) -> None:
        self.url = url
        """``http://127.0.0.1:PORT`` or ``https://...``."""
        self.port = int(url.rsplit(":", 1)[1])
        """The TCP port it listens on (pass it to the next :func:`start_cluster` to restart it
        at the same address, e.g. with ``store=MemoryStorage.restore(backup)``)."""
        self.faults = faults
        """Fault injection: failures, latency, dropped watches, compaction."""
        self.client = LocalClient(rest)
        """In-process API access with the same semantics as HTTP."""
        self.store: Storage = rest.store
        self.token = token
        self.certificate = certificate
        self._rest = rest
        self._admission = admission

    @property
    def ca_pem(self) -> bytes | None:
        """The CA certificate clients must trust in TLS mode."""
        return self.certificate.ca.cert_pem if self.certificate else None

    @property
    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for this cluster (one cluster, user and context)."""
        return build_kubeconfig(self.url, ca_pem=self.ca_pem, token=self.token)

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> Path:
        """Write the kubeconfig (mode 0600); ``namespace`` sets the context's default namespace."""
        return write_kubeconfig(
            build_kubeconfig(self.url, ca_pem=self.ca_pem, token=self.token, namespace=namespace),
            path,
        )

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting this cluster's CA (``None`` in plain HTTP mode)."""
        return self.certificate.client_context() if self.certificate else None

    @property
    def rest(self) -> RestApi:
        """The REST layer (advanced use: the verbs without the client conveniences)."""
        return self._rest

    def register_service_endpoint(
        self, namespace: str, name: str, url: str, *, port: int = 0
    ) -> None:
        """Route webhook calls for Service ``namespace/name`` (``port``; 0 for any) to ``url``,
        for webhook servers that run in this process or on the host rather than behind Endpoints."""
        self._admission.service_endpoints[(namespace, name, port)] = url

    async def install_crds(
        self, *sources: str | os.PathLike[str] | Obj | Iterable[Obj]
    ) -> list[str]:
        """Apply CustomResourceDefinitions from YAML text, files, directories or dicts.

        They are served as soon as this returns. Returns the CRD names.
        """
        names = []
        for source in sources:
            for doc in _documents(source):
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ValueError(
                        f"install_crds got kind={doc.get('kind')!r} named "
                        f"{doc.get('metadata', {}).get('name')!r}; "
                        "only CustomResourceDefinitions belong here (use "
                        "cluster.client.apply_manifests for others)"
                    )
                applied = await self.client.apply(doc, field_manager="kaito-testing-crds")
                names.append(applied["metadata"]["name"])
        return names

    async def create_namespace(self, name: str, *, labels: dict[str, str] | None = None) -> Obj:
        """Create a namespace (idempotent)."""
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        try:
            return await self.client.create(body)
        except StatusError as error:
            if error.code != 409:
                raise
            return await self.client.get("v1", "Namespace", name)

    async def add_node(
        self,
        name: str,
        *,
        gpus: int = 0,
        cpu: str = "8",
        memory: str = "32Gi",
        labels: dict[str, str] | None = None,
        taints: Iterable[Obj] = (),
        ready: bool = True,
        gpu_product: str | None = None,
        gpu_memory_mib: int | None = None,
    ) -> Obj:
        """Register a Node with capacity (``nvidia.com/gpu`` when ``gpus``), labels, taints and a
        ``Ready`` condition, as a kubelet would."""
        node = node_object(
            name,
            gpus=gpus,
            cpu=cpu,
            memory=memory,
            labels=labels or {},
            taints=list(taints),
            ready=ready,
            gpu_product=gpu_product,
            gpu_memory_mib=gpu_memory_mib,
            now=self._rest.clock(),
        )
        status = node.pop("status")
        await self.client.create(node)
        return await self.client.patch("v1", "Node", name, {"status": status}, subresource="status")


async def _bootstrap(client: LocalClient) -> None:
    for namespace in _SYSTEM_NAMESPACES:
        try:
            await client.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        except StatusError as error:
            if error.code != 409:
                raise
    kubernetes = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": "10.96.0.1",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    try:
        await client.create(kubernetes)
    except StatusError as error:
        if error.code != 409:
            raise


@asynccontextmanager
async def start_cluster(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = False,
    token: str | None = None,
    store: Storage | None = None,
    controllers: Controllers | bool = True,
    kubelet: Kubelet | None = None,
    crds: Iterable[str | os.PathLike[str] | Obj] = (),
    clock: TimeSource = system_clock,
    bookmark_interval: float = 10.0,
    history_window: int = 10_000,
) -> AsyncIterator[Cluster]:
    """Run a cluster for the duration of the ``async with`` block.

    Args:
        host: Address to listen on (loopback by default; plain HTTP should stay on loopback).
        port: TCP port, ``0`` for a free one (read :attr:`Cluster.url`).
        tls: Serve HTTPS with a freshly generated CA (in the kubeconfig).
        token: Require ``Authorization: Bearer <token>`` (written to the kubeconfig).
        store: Storage backend; an in-memory :class:`MemoryStorage` by default. A store
            restored from a backup (``MemoryStorage.restore(cluster.store.backup())``) starts
            the server where the backup was taken, as kube-apiserver over a restored etcd.
        controllers: Which simulated controllers run (``True`` all, ``False`` none).
        kubelet: Decides when Pods run, become Ready and finish (default: at once).
        crds: CRD manifests (paths, YAML text or dicts) installed before the block starts.
        clock: Source of timestamps.
        bookmark_interval: Seconds between watch bookmarks when clients allow them.
        history_window: Watch events kept per resource for resume (older versions get 410).

    Shutting down ends every watch, stops the controllers and closes the listener.
    """
    if isinstance(controllers, bool):
        controllers = Controllers.all() if controllers else Controllers.none()
    store = store or MemoryStorage(history_window=history_window)
    catalog = Catalog()
    for rt in builtin_types():
        catalog.add(rt)
    catalog.add(crd_resource_type(clock))
    registry = CrdRegistry(catalog)
    registry.attach(store)
    await registry.load(store)
    certificate = (
        generate_serving_certificate(sorted({host, "127.0.0.1", "localhost"})) if tls else None
    )
    admission = WebhookAdmission(store, catalog)
    rest = RestApi(store, catalog, admission, clock)
    admission.set_converter(
        lambda source, target, obj: rest.from_storage(
            target, rest.to_storage(source, copy.deepcopy(obj))
        )
    )
    faults = Faults(store)
    client = LocalClient(rest)
    await _bootstrap(client)
    address = {"value": f"{host}:{port}"}
    handler = ApiHandler(
        rest,
        faults=faults,
        server_address=lambda: address["value"],
        info=ServerInfo(),
        token=token,
        bookmark_interval=bookmark_interval,
        clock=clock,
    )
    server = web.Server(handler, access_log=None, handler_cancellation=True)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=0.25)
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, ssl_context=certificate.server_context() if certificate else None
    )
    await site.start()
    bound = runner.addresses[0]
    address["value"] = f"{host}:{bound[1]}"
    scheme = "https" if certificate else "http"
    url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{bound[1]}"
    cluster = Cluster(
        url=url, rest=rest, faults=faults, token=token, certificate=certificate, admission=admission
    )
    log.info("cluster_started", url=url, tls=bool(certificate))
    try:
        async with anyio.create_task_group() as tasks:
            await run_controllers(tasks, rest, store, controllers, kubelet=kubelet, clock=clock)
            try:
                if crds:
                    await cluster.install_crds(*crds)
                yield cluster
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            faults.drop_watches()
            store.terminate_watches()
            await admission.close()
            await runner.cleanup()
        log.info("cluster_stopped", url=url)


class ThreadedCluster:
    """A cluster running on its own event loop in a background thread, for synchronous callers."""

    def __init__(self, cluster: Cluster, portal: anyio.from_thread.BlockingPortal) -> None:
        self.cluster = cluster
        self.portal = portal
        self.url = cluster.url

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await func(*args)`` on the cluster's loop and return its result."""
        return self.portal.call(func, *args)

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> Path:
        """Write the kubeconfig (see :meth:`Cluster.write_kubeconfig`)."""
        return self.cluster.write_kubeconfig(path, namespace=namespace)

    @property
    def kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig dict."""
        return self.cluster.kubeconfig


@contextmanager
def cluster_in_thread(**settings: Any) -> Iterator[ThreadedCluster]:
    """Run :func:`start_cluster` (same keyword arguments) in a background thread."""
    with (
        anyio.from_thread.start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(start_cluster(**settings)) as cluster,
    ):
        yield ThreadedCluster(cluster, portal)
