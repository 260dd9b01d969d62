"""The public entry point: start an in-process cluster (HTTP API server, storage, simulated
controllers) and hand back a :class:`Cluster` handle; or run one in a background thread."""

from __future__ import annotations

import copy
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import anyio.from_thread
import structlog
from aiohttp import web

from kaito.cluster._admission import WebhookAdmission
from kaito.cluster._audit import AuditLog
from kaito.cluster._auth import (
    ADMIN,
    OWNER_REFERENCES_PLUGIN,
    AccessControl,
    ClientCertificate,
    ClusterRoleAggregator,
    EscalationGuard,
    IssuedToken,
    OwnerReferencesGuard,
    bootstrap_policy,
    issue_client_certificate,
    server_context,
)
from kaito.cluster._builtins import DEFAULT_SERVICE_CIDR, ServiceIPAllocator, builtin_types
from kaito.cluster._client import LocalClient, _documents
from kaito.cluster._controllers import Controllers, run_controllers
from kaito.cluster._controllers._loop import start_control_loop
from kaito.cluster._crd import crd_resource_type
from kaito.cluster._crd_registry import CrdRegistry
from kaito.cluster._errors import StatusError
from kaito.cluster._faults import Faults
from kaito.cluster._http import ApiHandler, PodStreams, ServerInfo
from kaito.cluster._json import Obj
from kaito.cluster._kubeconfig import build_kubeconfig, write_kubeconfig
from kaito.cluster._kubelet import SYSTEM_NODE_LABELS, SYSTEM_NODE_NAME, LocalKubelet, host_capacity
from kaito.cluster._meta import TimeSource, system_clock
from kaito.cluster._network import ClusterNetwork, EndpointsController, PodNetworking
from kaito.cluster._resource_types import Catalog
from kaito.cluster._rest import Admission, RestApi
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
        access: AccessControl,
        admin_certificate: ClientCertificate | None = None,
        audit: AuditLog | None = None,
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
        self.admin_certificate = admin_certificate
        """The administrator's client certificate (``O=system:masters``) in TLS mode."""
        self.access = access
        """Authentication, authorisation and the token issuer."""
        self.audit = audit or AuditLog()
        """The audit log of HTTP requests: ``with cluster.audit.record() as events: ...``."""
        self._rest = rest
        self._admission = admission
        self.network: ClusterNetwork | None = None
        """Service networking on this machine (``start_cluster(network=True)``): the proxy's
        :meth:`~ClusterNetwork.addresses` say where each Service port can be reached."""

    @property
    def ca_pem(self) -> bytes | None:
        """The CA certificate clients must trust in TLS mode."""
        return self.certificate.ca.cert_pem if self.certificate else None

    @property
    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for this cluster (one cluster, user and context) with the
        administrator's credentials."""
        return self._kubeconfig(None)

    def _kubeconfig(self, namespace: str | None) -> dict[str, Any]:
        admin = self.admin_certificate
        return build_kubeconfig(
            self.url,
            ca_pem=self.ca_pem,
            token=self.token,
            client_certificate=(admin.cert_pem, admin.key_pem) if admin else None,
            namespace=namespace,
        )

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> Path:
        """Write the kubeconfig (mode 0600); ``namespace`` sets the context's default namespace."""
        return write_kubeconfig(self._kubeconfig(namespace), path)

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting this cluster's CA, with no credentials (``None`` in plain
        HTTP mode)."""
        return self.certificate.client_context() if self.certificate else None

    def admin_ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting this cluster's CA that presents the administrator's client
        certificate (``None`` in plain HTTP mode)."""
        if self.certificate is None:
            return None
        context = self.certificate.client_context()
        if self.admin_certificate is not None:
            with tempfile.TemporaryDirectory() as directory:
                cert = Path(directory, "admin.crt")
                key = Path(directory, "admin.key")
                cert.write_bytes(self.admin_certificate.cert_pem)
                key.touch(mode=0o600)
                key.write_bytes(self.admin_certificate.key_pem)
                context.load_cert_chain(cert, key)
        return context

    @property
    def authorization_mode(self) -> str:
        """``AlwaysAllow`` or ``RBAC``."""
        return self.access.authorization_mode

    async def service_account_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Iterable[str] = (),
        expiration_seconds: int = 3600,
        pod: tuple[str, str] | None = None,
    ) -> IssuedToken:
        """Sign a token for ServiceAccount ``namespace/service_account`` (as the TokenRequest
        API does); ``pod`` = (name, uid) binds it to a Pod, as the token a kubelet mounts at
        ``/var/run/secrets/kubernetes.io/serviceaccount/token`` (then give
        ``expiration_seconds=3607``, kube-apiserver's default for those).

        Raises:
            StatusError: 404 when the ServiceAccount or Pod does not exist.
        """
        if pod is not None:
            return await self.access.pod_token(
                namespace,
                service_account,
                pod_name=pod[0],
                pod_uid=pod[1],
                audiences=tuple(audiences),
                expiration_seconds=expiration_seconds,
            )
        return await self.access.tokens.issue(
            namespace,
            service_account,
            audiences=tuple(audiences),
            expiration_seconds=expiration_seconds,
        )

    def kubeconfig_for_user(
        self, user: str, groups: Iterable[str] = (), *, namespace: str | None = None
    ) -> dict[str, Any]:
        """A kubeconfig whose client certificate (signed by this cluster's CA) authenticates as
        ``user`` in ``groups``; TLS only."""
        if self.certificate is None:
            raise ValueError(
                "kubeconfig_for_user needs a TLS cluster (start_cluster(tls=True)): client "
                "certificates are only presented over TLS"
            )
        issued = issue_client_certificate(self.certificate.ca, user, list(groups))
        return build_kubeconfig(
            self.url,
            ca_pem=self.ca_pem,
            client_certificate=(issued.cert_pem, issued.key_pem),
            namespace=namespace,
        )

    def kubeconfig_for_token(self, token: str, *, namespace: str | None = None) -> dict[str, Any]:
        """A kubeconfig that authenticates with ``token`` (a ServiceAccount's, say); TLS only,
        since kubectl never sends a bearer token over plain HTTP."""
        if self.certificate is None:
            raise ValueError(
                "kubeconfig_for_token needs a TLS cluster (start_cluster(tls=True)): kubectl "
                "and client-go never send a bearer token over plain HTTP"
            )
        return build_kubeconfig(self.url, ca_pem=self.ca_pem, token=token, namespace=namespace)

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
        ``Ready`` condition, as a kubelet would (a Node already stored, as after a restart on a
        durable store, gets its status refreshed)."""
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
        try:
            await self.client.create(node)
        except StatusError as error:
            if error.code != 409:
                raise
        return await self.client.patch("v1", "Node", name, {"status": status}, subresource="status")


def _kubernetes_names(service_ips: ServiceIPAllocator) -> list[str]:
    """The names and address of the ``kubernetes`` Service, which the serving certificate
    covers as kube-apiserver's does (Pods reach the API server through it)."""
    service = "kubernetes.default.svc"
    return [service_ips.kubernetes_ip, "kubernetes", "kubernetes.default", service,
            f"{service}.cluster.local"]  # fmt: skip


async def _bootstrap(client: LocalClient, kubernetes_ip: str) -> None:
    for obj in bootstrap_policy():
        try:
            await client.create(obj)
        except StatusError as error:
            if error.code != 409:
                raise
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
            "clusterIP": kubernetes_ip,
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
    authorization: str = "AlwaysAllow",
    admission_plugins: Iterable[str] = (),
    store: Storage | None = None,
    controllers: Controllers | bool = True,
    kubelet: Kubelet | Literal["simulated", "local"] | None = None,
    system_node: bool = False,
    network: bool | None = None,
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    crds: Iterable[str | os.PathLike[str] | Obj] = (),
    clock: TimeSource = system_clock,
    bookmark_interval: float = 10.0,
    history_window: int = 10_000,
) -> AsyncIterator[Cluster]:
    """Run a cluster for the duration of the ``async with`` block.

    Args:
        host: Address to listen on (loopback by default; plain HTTP should stay on loopback).
        port: TCP port, ``0`` for a free one (read :attr:`Cluster.url`).
        tls: Serve HTTPS with a freshly generated CA, and require credentials: the kubeconfig
            carries the CA and the administrator's client certificate (``O=system:masters``),
            as kind and k3s write theirs; anonymous requests get 401 (but ``/version`` and the
            health endpoints). Off, requests without credentials act as the administrator.
        token: An administrator bearer token, also written to the kubeconfig; needs ``tls``
            (kubectl and client-go never send a bearer token over plain HTTP).
        authorization: ``AlwaysAllow`` (the default) or ``RBAC``: Roles, ClusterRoles and their
            bindings decide, with ``system:masters`` allowed everything, as kube-apiserver's
            ``--authorization-mode=RBAC``.
        admission_plugins: Admission plugins beyond the webhooks and RBAC's escalation checks,
            as ``--enable-admission-plugins``: ``OwnerReferencesPermissionEnforcement``
            (setting ``blockOwnerDeletion`` needs ``update`` on the owner's ``finalizers``).
        store: Storage backend; an in-memory :class:`MemoryStorage` by default. A store
            restored from a backup (``MemoryStorage.restore(cluster.store.backup())``) starts
            the server where the backup was taken, as kube-apiserver over a restored etcd.
        controllers: Which simulated controllers run (``True`` all, ``False`` none).
        kubelet: Decides when Pods run, become Ready and finish: ``"simulated"`` (or ``None``,
            the default) reports them Running and Ready at once; ``"local"`` runs them as
            processes of this machine with a :class:`LocalKubelet` the cluster owns; or any
            :class:`Kubelet` (a ``LocalKubelet`` you configured, entered by you or by the cluster).
        system_node: Register an untainted CPU node (``kaito-system``, this machine's CPUs and
            memory), as AKS has its system pool, so ordinary Pods schedule.
        network: Serve Services on this machine: a proxy on every cluster IP and, with the
            local kubelet, Service names and variables in Pods (``docs/local-networking.md``).
            ``None`` (the default) turns it on exactly when the kubelet is a ``LocalKubelet``.
        service_cidr: The range cluster IPs come from (loopback, so the proxy can serve them;
            the ``kubernetes`` Service takes its first address).
        crds: CRD manifests (paths, YAML text or dicts) installed before the block starts.
        clock: Source of timestamps.
        bookmark_interval: Seconds between watch bookmarks when clients allow them.
        history_window: Watch events kept per resource for resume (older versions get 410).

    Shutting down ends every watch, stops the controllers and closes the listener.
    """
    if token and not tls:
        raise ValueError(
            "token= needs tls=True: kubectl and client-go never send a bearer token over plain "
            "HTTP, so every command would get 401 Unauthorized"
        )
    if isinstance(controllers, bool):
        controllers = Controllers.all() if controllers else Controllers.none()
    async with AsyncExitStack() as stack:
        chosen: Kubelet | None
        if kubelet == "local":
            chosen = await stack.enter_async_context(LocalKubelet())
        elif kubelet == "simulated":
            chosen = None
        elif isinstance(kubelet, LocalKubelet) and not kubelet.started:
            # Not entered by the caller: the cluster owns it (and stops what it runs).
            chosen = await stack.enter_async_context(kubelet)
        else:
            chosen = kubelet
        if network is None:
            network = isinstance(chosen, LocalKubelet)
        async with _serve(
            host=host,
            port=port,
            tls=tls,
            token=token,
            authorization=authorization,
            admission_plugins=admission_plugins,
            store=store,
            controllers=controllers,
            kubelet=chosen,
            system_node=system_node,
            network=network,
            service_cidr=service_cidr,
            crds=crds,
            clock=clock,
            bookmark_interval=bookmark_interval,
            history_window=history_window,
        ) as cluster:
            yield cluster


@asynccontextmanager
async def _serve(
    *,
    host: str,
    port: int,
    tls: bool,
    token: str | None,
    authorization: str,
    admission_plugins: Iterable[str],
    store: Storage | None,
    controllers: Controllers,
    kubelet: Kubelet | None,
    system_node: bool,
    network: bool,
    service_cidr: str,
    crds: Iterable[str | os.PathLike[str] | Obj],
    clock: TimeSource,
    bookmark_interval: float,
    history_window: int,
) -> AsyncIterator[Cluster]:
    store = store or MemoryStorage(history_window=history_window)
    service_ips = ServiceIPAllocator(service_cidr)
    service_ips.attach(store)
    await service_ips.load(store)
    catalog = Catalog()
    for rt in builtin_types(service_ips=service_ips):
        catalog.add(rt)
    catalog.add(crd_resource_type(clock))
    registry = CrdRegistry(catalog)
    registry.attach(store)
    await registry.load(store)
    certificate = (
        generate_serving_certificate(
            sorted({host, "127.0.0.1", "localhost", *_kubernetes_names(service_ips)})
        )
        if tls
        else None
    )
    admin_certificate = (
        issue_client_certificate(
            certificate.ca, ADMIN.name, [g for g in ADMIN.groups if g != "system:authenticated"]
        )
        if certificate
        else None
    )
    access = AccessControl(
        store,
        clock,
        authorization=authorization,
        admin_token=token,
        require_authentication=tls,
    )
    plugins = set(admission_plugins)
    if plugins - {OWNER_REFERENCES_PLUGIN}:
        raise ValueError(
            f"admission_plugins={sorted(plugins)!r}: unknown plugin(s) "
            f"{sorted(plugins - {OWNER_REFERENCES_PLUGIN})}; known: {OWNER_REFERENCES_PLUGIN}"
        )
    admission = WebhookAdmission(store, catalog)
    chain: Admission = EscalationGuard(admission, access.authorizer, store)
    if OWNER_REFERENCES_PLUGIN in plugins:
        chain = OwnerReferencesGuard(chain, access.authorizer, catalog)
    rest = RestApi(store, catalog, chain, clock)
    admission.set_converter(
        lambda source, target, obj: rest.from_storage(
            target, rest.to_storage(source, copy.deepcopy(obj))
        )
    )
    faults = Faults(store)
    client = LocalClient(rest)
    await _bootstrap(client, service_ips.kubernetes_ip)
    address = {"value": f"{host}:{port}"}
    audit = AuditLog()
    handler = ApiHandler(
        rest,
        faults=faults,
        server_address=lambda: address["value"],
        info=ServerInfo(),
        access=access,
        bookmark_interval=bookmark_interval,
        clock=clock,
        streams=kubelet if isinstance(kubelet, PodStreams) else None,
        audit=audit,
    )
    server = web.Server(handler, access_log=None, handler_cancellation=True)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=0.25)
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, ssl_context=server_context(certificate) if certificate else None
    )
    await site.start()
    bound = runner.addresses[0]
    address["value"] = f"{host}:{bound[1]}"
    scheme = "https" if certificate else "http"
    url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{bound[1]}"
    cluster = Cluster(
        url=url,
        rest=rest,
        faults=faults,
        token=token,
        certificate=certificate,
        admission=admission,
        access=access,
        admin_certificate=admin_certificate,
        audit=audit,
    )
    log.info(
        "cluster_started",
        url=url,
        tls=bool(certificate),
        authentication="required" if access.require_authentication else "off",
        authorization=access.authorization_mode,
    )
    api_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    issuer = _plug_token_issuer(kubelet, cluster)
    try:
        async with anyio.create_task_group() as tasks, AsyncExitStack() as stack:
            await run_controllers(tasks, rest, store, controllers, kubelet=kubelet, clock=clock)
            start_control_loop(tasks, store, ClusterRoleAggregator(rest))
            if controllers.endpoints:
                start_control_loop(
                    tasks, store, EndpointsController(rest, apiserver=lambda: (api_host, bound[1]))
                )
            if network:
                cluster.network = await stack.enter_async_context(
                    ClusterNetwork(
                        store, kubelet=kubelet if isinstance(kubelet, PodNetworking) else None
                    )
                )
            try:
                if crds:
                    await cluster.install_crds(*crds)
                if system_node:
                    cpu, memory = host_capacity()
                    await cluster.add_node(
                        SYSTEM_NODE_NAME, cpu=cpu, memory=memory, labels=dict(SYSTEM_NODE_LABELS)
                    )
                yield cluster
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            faults.drop_watches()
            store.terminate_watches()
            await admission.close()
            await runner.cleanup()
            access.close()
            if issuer and isinstance(kubelet, LocalKubelet):
                kubelet.token_source = None
        log.info("cluster_stopped", url=url)


def _plug_token_issuer(kubelet: Kubelet | None, cluster: Cluster) -> bool:
    """Give a local kubelet without a token source this cluster's TokenRequest issuer, for
    projected ``serviceAccountToken`` volumes; whether it did."""
    if not isinstance(kubelet, LocalKubelet) or kubelet.token_source is not None:
        return False

    async def issue(pod: Obj, audience: str, expiration_seconds: int) -> str:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        issued = await cluster.service_account_token(
            str(meta.get("namespace", "")),
            str(spec.get("serviceAccountName") or "default"),
            audiences=(audience,) if audience else (),
            expiration_seconds=expiration_seconds,
            pod=(str(meta.get("name", "")), str(meta.get("uid", ""))),
        )
        return issued.token

    kubelet.token_source = issue
    return True


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
