"""A user-space service proxy (what kube-proxy's old ``userspace`` mode did): for every TCP port
of every Service with a cluster IP, a listener on ``clusterIP:port`` that hands each connection
to the next ready endpoint, round robin, skipping endpoints that refuse; endpoints and ports
follow the Service and its EndpointSlices as they change.

Ports below 1024 need root (or ``CAP_NET_BIND_SERVICE``). Where the OS refuses one, the port is
served at ``port + 8000`` of the same cluster IP instead (``80`` -> ``8080``; an ephemeral port
if that is taken too), the refusal is logged once, and :meth:`ServiceProxy.addresses` says where
each Service port can really be reached.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import cast

import anyio
import anyio.abc
import attrs
import structlog

from kaito.cluster._builtins import SERVICES, service_cluster_ips
from kaito.cluster._json import loads
from kaito.cluster._network._endpoints import ENDPOINT_SLICES, SERVICE_NAME_LABEL
from kaito.cluster._store import GroupResource, Storage, StorageEvent

__all__ = ("Binder", "ServiceAddress", "ServiceProxy", "bind_tcp", "splice")

log = structlog.get_logger(__name__)

Listener = anyio.abc.Listener[anyio.abc.SocketStream]
Binder = Callable[[str, int], Awaitable[Listener]]
"""``bind(ip, port)`` -> a listening TCP socket (raises ``OSError`` as ``bind(2)`` does)."""

_BUFFER = 64 * 1024
_PRIVILEGED_HINT = (
    "ports below 1024 need root or CAP_NET_BIND_SERVICE (e.g. "
    "`sudo setcap cap_net_bind_service=+ep $(readlink -f $(which python3))`)"
)


async def bind_tcp(ip: str, port: int) -> Listener:
    """Listen on ``ip:port`` (SO_REUSEADDR, so a port frees at once for the next cluster)."""
    return await anyio.create_tcp_listener(local_host=ip, local_port=port, backlog=128)


@attrs.frozen
class ServiceAddress:
    """Where one Service port is served on this machine."""

    namespace: str
    name: str
    port_name: str
    port: int
    """The Service's port (``spec.ports[].port``)."""
    cluster_ip: str
    bound_port: int
    """The port the proxy listens on: ``port`` unless the OS refused it."""

    @property
    def address(self) -> str:
        """``ip:port`` to connect to."""
        return f"{self.cluster_ip}:{self.bound_port}"

    @property
    def exact(self) -> bool:
        """Whether the Service port is served at its own number."""
        return self.bound_port == self.port

    @property
    def url(self) -> str:
        """``http://ip`` (with ``:port`` unless it is 80)."""
        suffix = "" if self.bound_port == 80 else f":{self.bound_port}"
        return f"http://{self.cluster_ip}{suffix}"


async def _pump(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    try:
        while True:
            data = await source.receive(_BUFFER)
            await sink.send(data)
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        try:
            await sink.send_eof()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            scope.cancel()
    except (OSError, anyio.BrokenResourceError):
        scope.cancel()  # a reset on one side ends both


async def splice(a: anyio.abc.SocketStream, b: anyio.abc.SocketStream) -> None:
    """Copy both ways until both sides have finished (half-closes are passed on)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(_pump, a, b, tg.cancel_scope)
        tg.start_soon(_pump, b, a, tg.cancel_scope)


class _PortProxy:
    """One Service port: its listener and the endpoints connections go to."""

    def __init__(
        self,
        address: ServiceAddress,
        listener: Listener,
        limiter: anyio.CapacityLimiter,
        connect_timeout: float,
    ) -> None:
        self.address = address
        self.listener = listener
        self.backends: list[tuple[str, int]] = []
        self.scope = anyio.CancelScope()
        self._next = 0
        self._limiter = limiter
        self._connect_timeout = connect_timeout

    async def serve(self) -> None:
        with self.scope:
            async with self.listener, anyio.create_task_group() as tg:
                await self.listener.serve(self._handle, tg)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if self._limiter.available_tokens < 1:
                log.warning(
                    "service_proxy_busy",
                    service=f"{self.address.namespace}/{self.address.name}",
                    port=self.address.port,
                    limit=self._limiter.total_tokens,
                )
                return
            async with self._limiter:
                backend = await self._connect()
                if backend is None:
                    return
                async with backend:
                    await splice(client, backend)

    async def _connect(self) -> anyio.abc.SocketStream | None:
        backends = list(self.backends)
        start = self._next
        self._next += 1
        for step in range(len(backends)):
            ip, port = backends[(start + step) % len(backends)]
            try:
                with anyio.fail_after(self._connect_timeout):
                    return await anyio.connect_tcp(ip, port)
            except (OSError, TimeoutError) as error:
                log.debug(
                    "service_endpoint_refused",
                    service=f"{self.address.namespace}/{self.address.name}",
                    endpoint=f"{ip}:{port}",
                    error=str(error),
                )
        log.info(
            "service_has_no_endpoint",
            service=f"{self.address.namespace}/{self.address.name}",
            port=self.address.port,
            tried=len(backends),
        )
        return None


class ServiceProxy:
    """Serves every Service's cluster IP on this machine (a control loop over Services and
    EndpointSlices; its listeners run in ``tasks``)."""

    name = "service-proxy"

    def __init__(
        self,
        store: Storage,
        tasks: anyio.abc.TaskGroup,
        *,
        bind: Binder = bind_tcp,
        unprivileged_offset: int = 8000,
        max_connections: int = 1024,
        connect_timeout: float = 2.0,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._bind = bind
        self._offset = unprivileged_offset
        self._connect_timeout = connect_timeout
        self._limiter = anyio.CapacityLimiter(max_connections)
        self._ports: dict[tuple[str, str], dict[tuple[int, str], _PortProxy]] = {}
        self._warned = False
        self._changed = anyio.Event()

    def addresses(self) -> list[ServiceAddress]:
        """Where each Service port is served now, sorted by namespace, name and port."""
        found = [p.address for ports in self._ports.values() for p in ports.values()]
        return sorted(found, key=lambda a: (a.namespace, a.name, a.port))

    def endpoints(self, namespace: str, name: str, port: int) -> list[tuple[str, int]]:
        """The ready endpoints connections to the Service's ``port`` go to now."""
        proxy = self._ports.get((namespace, name), {}).get((port, "TCP"))
        return list(proxy.backends) if proxy is not None else []

    @property
    def changed(self) -> anyio.Event:
        """Set at the next change of :meth:`addresses` or of any endpoints (take it again
        after it fired)."""
        return self._changed

    def _bump(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- the control loop -------------------------------------------------------------------

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == SERVICES:
            return ((event.obj.namespace, event.obj.name),)
        if gr == ENDPOINT_SLICES:
            service = event.obj.labels.get(SERVICE_NAME_LABEL)
            if event.prev is not None:
                service = service or event.prev.labels.get(SERVICE_NAME_LABEL)
            if service:
                return ((event.obj.namespace, service),)
        return ()

    async def initial_keys(self) -> Iterable[Hashable]:
        return [(s.namespace, s.name) for s in (await self._store.list(SERVICES, None)).items]

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = cast("tuple[str, str]", key)
        service_key = (namespace, name)
        stored = await self._store.get(SERVICES, namespace, name)
        wanted: dict[tuple[int, str], str] = {}
        cluster_ip = ""
        if stored is not None and not stored.deleting:
            service = loads(stored.data)
            ips = service_cluster_ips(service)
            cluster_ip = ips[0] if ips else ""
            if cluster_ip:
                for port in (service.get("spec") or {}).get("ports") or []:
                    if (port.get("protocol") or "TCP") == "TCP" and port.get("port"):
                        wanted[(int(port["port"]), "TCP")] = str(port.get("name") or "")
        current = self._ports.setdefault(service_key, {})
        changed = False
        for port_key, proxy in list(current.items()):
            if port_key not in wanted or proxy.address.cluster_ip != cluster_ip:
                proxy.scope.cancel()
                del current[port_key]
                changed = True
        for port_key, port_name in wanted.items():
            if port_key not in current:
                opened = await self._open(namespace, name, port_name, port_key[0], cluster_ip)
                if opened is not None:
                    current[port_key] = opened
                    self._tasks.start_soon(
                        opened.serve, name=f"proxy-{namespace}/{name}:{port_key[0]}"
                    )
                    changed = True
        if current:
            backends = await self._backends(namespace, name)
            for (number, _), proxy in current.items():
                found = backends.get(proxy.address.port_name, [])
                if found != proxy.backends:
                    proxy.backends = found
                    changed = True
                    log.debug(
                        "service_endpoints",
                        service=f"{namespace}/{name}",
                        port=number,
                        endpoints=[f"{ip}:{p}" for ip, p in found],
                    )
        else:
            self._ports.pop(service_key, None)
        if changed:
            self._bump()
        return None

    async def _backends(self, namespace: str, name: str) -> dict[str, list[tuple[str, int]]]:
        """Ready endpoints per Service port name."""
        out: dict[str, list[tuple[str, int]]] = {}
        for stored in (await self._store.list(ENDPOINT_SLICES, namespace)).items:
            if stored.labels.get(SERVICE_NAME_LABEL) != name:
                continue
            body = loads(stored.data)
            ports = [
                (str(p.get("name") or ""), int(p.get("port") or 0))
                for p in body.get("ports") or []
                if (p.get("protocol") or "TCP") == "TCP" and p.get("port")
            ]
            for endpoint in body.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                for address in endpoint.get("addresses") or []:
                    for port_name, number in ports:
                        out.setdefault(port_name, []).append((str(address), number))
        for found in out.values():
            found.sort()
        return out

    async def _open(
        self, namespace: str, name: str, port_name: str, port: int, cluster_ip: str
    ) -> _PortProxy | None:
        service = f"{namespace}/{name}"
        try:
            listener = await self._bind(cluster_ip, port)
            bound = port
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EPERM, errno.EADDRINUSE):
                log.warning(
                    "service_port_not_served",
                    service=service,
                    address=f"{cluster_ip}:{port}",
                    error=str(error),
                )
                return None
            moved, bound = await self._fallback(service, cluster_ip, port, error)
            if moved is None:
                return None
            listener = moved
        address = ServiceAddress(namespace, name, port_name, port, cluster_ip, bound)
        log.info("service_port_served", service=service, address=address.address, port=port)
        return _PortProxy(address, listener, self._limiter, self._connect_timeout)

    async def _fallback(
        self, service: str, cluster_ip: str, port: int, error: OSError
    ) -> tuple[Listener | None, int]:
        refused = error.errno in (errno.EACCES, errno.EPERM)
        if refused and not self._warned:
            self._warned = True
            log.warning(
                "service_privileged_ports_refused",
                reason=_PRIVILEGED_HINT,
                fallback=f"such ports are served at port+{self._offset} of the cluster IP",
            )
        elif not refused:
            log.warning(
                "service_address_in_use",
                service=service,
                address=f"{cluster_ip}:{port}",
                reason="another process (another cluster on this machine?) listens there",
            )
        candidates = [port + self._offset] if refused and port + self._offset <= 65535 else []
        for candidate in [*candidates, 0]:
            try:
                listener = await self._bind(cluster_ip, candidate)
            except OSError:
                continue
            bound = int(listener.extra(anyio.abc.SocketAttribute.local_port))
            log.info(
                "service_port_moved",
                service=service,
                port=port,
                address=f"{cluster_ip}:{bound}",
            )
            return listener, bound
        log.warning("service_port_not_served", service=service, address=f"{cluster_ip}:{port}")
        return None, 0

    async def aclose(self) -> None:
        """Stop every listener (their connections end)."""
        for ports in self._ports.values():
            for proxy in ports.values():
                proxy.scope.cancel()
        self._ports.clear()
        self._bump()
