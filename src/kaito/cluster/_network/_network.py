"""Service networking of an in-process cluster on this machine: the user-space proxy on every
cluster IP, and, for a local kubelet, the cluster names in each Pod's ``/etc/hosts`` and the
Service variables in its environment (see ``docs/local-networking.md``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Protocol, runtime_checkable

import anyio
import structlog

from kaito.cluster._controllers._loop import start_control_loop
from kaito.cluster._json import Obj
from kaito.cluster._network._names import ServiceDirectory
from kaito.cluster._network._proxy import Binder, ServiceAddress, ServiceProxy, bind_tcp
from kaito.cluster._store import Storage

__all__ = ("ClusterNetwork", "PodNetworking")

log = structlog.get_logger(__name__)


@runtime_checkable
class PodNetworking(Protocol):
    """Protocol: a kubelet that takes Service networking (``LocalKubelet`` is one)."""

    def use_network(
        self,
        *,
        service_env: Callable[[Obj], Mapping[str, str]] | None,
        hosts: Callable[[str], list[tuple[str, list[str]]]] | None,
    ) -> None:
        """Build Pods' environment and ``/etc/hosts`` with these from now on."""
        ...

    async def refresh_hosts(self) -> None:
        """Rewrite the ``/etc/hosts`` of every running Pod."""
        ...


class ClusterNetwork:
    """The proxy and the Pods' view of Services, for the duration of an ``async with`` block.

    Leaving the block closes every listener (every port it bound is free again) and ends every
    proxied connection.
    """

    def __init__(
        self,
        store: Storage,
        *,
        kubelet: PodNetworking | None = None,
        bind: Binder = bind_tcp,
        unprivileged_offset: int = 8000,
        max_connections: int = 1024,
    ) -> None:
        self._store = store
        self._kubelet = kubelet
        self._bind = bind
        self._offset = unprivileged_offset
        self._max_connections = max_connections
        self.directory = ServiceDirectory()
        self._proxy: ServiceProxy | None = None
        self._stack: AsyncExitStack | None = None
        self._hosts_version = -1
        self._hosts_written = anyio.Event()

    @property
    def proxy(self) -> ServiceProxy:
        """The service proxy (inside the block)."""
        if self._proxy is None:
            raise RuntimeError("the cluster network is not running; use it as `async with`")
        return self._proxy

    def addresses(self) -> list[ServiceAddress]:
        """Where every Service port can be reached from this machine now (the cluster IP and
        port, or the port the proxy had to use instead)."""
        return self._proxy.addresses() if self._proxy is not None else []

    async def __aenter__(self) -> ClusterNetwork:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await stack.enter_async_context(self._running())
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        detach = self.directory.attach(self._store)
        try:
            await self.directory.load(self._store)
            async with anyio.create_task_group() as tasks:
                self._proxy = ServiceProxy(
                    self._store,
                    tasks,
                    bind=self._bind,
                    unprivileged_offset=self._offset,
                    max_connections=self._max_connections,
                )
                start_control_loop(tasks, self._store, self._proxy)
                if self._kubelet is not None:
                    self._kubelet.use_network(
                        service_env=self.directory.environment, hosts=self.directory.hosts
                    )
                    tasks.start_soon(self._refresh_hosts, self._kubelet)
                log.info("cluster_network_started")
                try:
                    yield
                finally:
                    if self._kubelet is not None:
                        self._kubelet.use_network(service_env=None, hosts=None)
                    await self._proxy.aclose()
                    tasks.cancel_scope.cancel()
        finally:
            detach()
            self._proxy = None
            log.info("cluster_network_stopped")

    async def hosts_current(self) -> None:
        """Wait until every running Pod's ``/etc/hosts`` shows the Services as they are now
        (returns at once without a local kubelet)."""
        if self._kubelet is None or self._proxy is None:
            return
        target = self.directory.version
        while self._hosts_version < target:
            await self._hosts_written.wait()

    async def _refresh_hosts(self, kubelet: PodNetworking) -> None:
        while True:
            changed = self.directory.changed
            version = self.directory.version
            await kubelet.refresh_hosts()
            self._hosts_version = version
            self._hosts_written.set()
            self._hosts_written = anyio.Event()
            await changed.wait()
