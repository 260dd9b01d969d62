"""What a Pod knows of Services: the names it resolves (``/etc/hosts`` lines, in place of cluster
DNS) and the Service variables the kubelet puts in its environment.

Names, for a Service ``S`` in namespace ``N`` seen from a Pod in namespace ``P``:
``S.N.svc.cluster.local``, ``S.N.svc`` and ``S.N`` (what the DNS search path of a Pod makes of
them), plus ``S`` when ``N == P``; they resolve to the cluster IP, or, for a headless Service, to
the address of every ready endpoint (one line each), whose hostnames also resolve as
``HOST.S.N.svc.cluster.local`` (a StatefulSet's Pods). ExternalName Services, SRV records and
names of Pods by IP (``1-2-3-4.N.pod``) are not provided: a hosts file cannot express them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio
import attrs

from kaito.cluster._builtins import SERVICES, service_cluster_ips
from kaito.cluster._json import Obj, loads
from kaito.cluster._network._endpoints import ENDPOINT_SLICES, SERVICE_NAME_LABEL
from kaito.cluster._store import EventType, GroupResource, Storage, StorageEvent

__all__ = ("CLUSTER_DOMAIN", "MAX_HOSTS_LINES", "ServiceDirectory", "service_variables")

CLUSTER_DOMAIN = "cluster.local"
#: A Pod's hosts file lists at most this many cluster names (the rest are left out).
MAX_HOSTS_LINES = 4096
_MASTER_SERVICES = (("default", "kubernetes"),)


@attrs.frozen
class _Service:
    cluster_ip: str
    """The cluster IP; empty for headless and ExternalName Services."""
    headless: bool
    ports: tuple[tuple[str, int, str], ...]
    """``(name, port, protocol)``."""


def _env_name(text: str) -> str:
    return text.replace("-", "_").upper()


def service_variables(
    name: str, cluster_ip: str, ports: tuple[tuple[str, int, str], ...]
) -> dict[str, str]:
    """The variables a Service gives the Pods of its namespace (``FOO_SERVICE_HOST``, and the
    Docker-link style ``FOO_PORT_80_TCP_ADDR``...), as the kubelet writes them."""
    prefix = _env_name(name)
    out = {f"{prefix}_SERVICE_HOST": cluster_ip}
    if not ports:
        return out
    out[f"{prefix}_SERVICE_PORT"] = str(ports[0][1])
    for port_name, port, _ in ports:
        if port_name:
            out[f"{prefix}_SERVICE_PORT_{_env_name(port_name)}"] = str(port)
    for index, (_, port, protocol) in enumerate(ports):
        scheme = protocol.lower()
        url = f"{scheme}://{cluster_ip}:{port}"
        if index == 0:
            out[f"{prefix}_PORT"] = url
        base = f"{prefix}_PORT_{port}_{protocol.upper()}"
        out[base] = url
        out[f"{base}_PROTO"] = scheme
        out[f"{base}_PORT"] = str(port)
        out[f"{base}_ADDR"] = cluster_ip
    return out


class ServiceDirectory:
    """Services and their ready endpoints, followed from store commits (:meth:`attach`,
    :meth:`load`); :attr:`changed` fires after every change to what Pods resolve."""

    def __init__(self, *, cluster_domain: str = CLUSTER_DOMAIN) -> None:
        self.cluster_domain = cluster_domain
        self._services: dict[tuple[str, str], _Service] = {}
        self._slices: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = {}
        """slice key -> (service name, [(ip, hostname)] of its ready endpoints)."""
        self._changed = anyio.Event()
        self.version = 0

    @property
    def changed(self) -> anyio.Event:
        """Set at the next change (take it again after it fired)."""
        return self._changed

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = anyio.Event()

    # -- following the store ----------------------------------------------------------------

    def attach(self, store: Storage) -> Callable[[], None]:
        """Follow Service and EndpointSlice commits; returns the function that stops it."""
        return store.add_listener(self._on_commit)

    async def load(self, store: Storage) -> None:
        """Read what is stored already."""
        for stored in (await store.list(SERVICES, None)).items:
            self._services[(stored.namespace, stored.name)] = self._service(loads(stored.data))
        for stored in (await store.list(ENDPOINT_SLICES, None)).items:
            self._slices[(stored.namespace, stored.name)] = self._slice(loads(stored.data))
        self._bump()

    def _on_commit(self, gr: GroupResource, event: StorageEvent) -> None:
        key = (event.obj.namespace, event.obj.name)
        if gr == SERVICES:
            if event.type is EventType.DELETED:
                self._services.pop(key, None)
            else:
                service = self._service(loads(event.obj.data))
                if self._services.get(key) == service:
                    return
                self._services[key] = service
            self._bump()
        elif gr == ENDPOINT_SLICES:
            if event.type is EventType.DELETED:
                self._slices.pop(key, None)
            else:
                found = self._slice(loads(event.obj.data))
                if self._slices.get(key) == found:
                    return
                self._slices[key] = found
            self._bump()

    @staticmethod
    def _service(service: Obj) -> _Service:
        spec = service.get("spec") or {}
        ips = service_cluster_ips(service)
        ports = tuple(
            (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"))
            for p in spec.get("ports") or []
        )
        headless = spec.get("clusterIP") == "None" and spec.get("type") != "ExternalName"
        return _Service(ips[0] if ips else "", headless, ports)

    @staticmethod
    def _slice(body: Obj) -> tuple[str, list[tuple[str, str]]]:
        service = str(
            ((body.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL, "")
        )
        ready = []
        for endpoint in body.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                ready.append((str(address), str(endpoint.get("hostname") or "")))
        return service, ready

    # -- what Pods see ----------------------------------------------------------------------

    def _names(self, name: str, namespace: str, pod_namespace: str) -> list[str]:
        names = [
            f"{name}.{namespace}.svc.{self.cluster_domain}",
            f"{name}.{namespace}.svc",
            f"{name}.{namespace}",
        ]
        if namespace == pod_namespace:
            names.append(name)
        return names

    def hosts(self, pod_namespace: str) -> list[tuple[str, list[str]]]:
        """``(ip, names)`` lines for a Pod of ``pod_namespace`` (at most ``MAX_HOSTS_LINES``)."""
        lines: list[tuple[str, list[str]]] = []
        endpoints: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for (namespace, _), (owner, ready) in self._slices.items():
            endpoints.setdefault((namespace, owner), []).extend(ready)
        for (namespace, name), service in sorted(self._services.items()):
            if service.cluster_ip:
                lines.append((service.cluster_ip, self._names(name, namespace, pod_namespace)))
            elif service.headless:
                for ip, hostname in sorted(set(endpoints.get((namespace, name), []))):
                    lines.append((ip, self._names(name, namespace, pod_namespace)))
                    if hostname:
                        lines.append(
                            (ip, self._names(f"{hostname}.{name}", namespace, pod_namespace))
                        )
            if len(lines) >= MAX_HOSTS_LINES:
                return lines[:MAX_HOSTS_LINES]
        return lines

    def environment(self, pod: Obj) -> Mapping[str, str]:
        """The Service variables of ``pod``: its namespace's Services when ``enableServiceLinks``
        (the default), and always the ``kubernetes`` Service."""
        namespace = str((pod.get("metadata") or {}).get("namespace", ""))
        links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
        out: dict[str, str] = {}
        for (service_ns, name), service in sorted(self._services.items()):
            if not service.cluster_ip:
                continue
            if (service_ns, name) in _MASTER_SERVICES or (links and service_ns == namespace):
                for key, value in service_variables(
                    name, service.cluster_ip, service.ports
                ).items():
                    out.setdefault(key, value)
        return out
