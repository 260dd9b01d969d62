"""Cluster IPs of Services, handed out the way kube-apiserver's allocator does: from one range
(a loopback range here, so that a proxy on this machine can serve every one of them), unique
across the cluster, recorded in the Service's ``spec.clusterIP``/``spec.clusterIPs`` and
rebuilt from the stored Services when the server starts (the store is the only record, as
kube-apiserver's repair loop rebuilds its bitmap).

The first address of the range is the ``kubernetes`` Service's. Addresses asked for by name
(``spec.clusterIP: 127.96.0.10``) may come from the whole range; addresses handed out
dynamically come from above the low band first (kube-apiserver's ``ServiceIPStaticSubrange``),
so a manifest that pins a low address rarely collides with one handed out before.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable

from kaito.apimachinery import FieldError
from kaito.cluster._errors import internal_error, invalid
from kaito.cluster._json import Obj, loads
from kaito.cluster._store import EventType, GroupResource, Storage, StorageEvent

__all__ = ("DEFAULT_SERVICE_CIDR", "SERVICES", "ServiceIPAllocator", "service_cluster_ips")

DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
SERVICES = GroupResource("", "services")

#: An address handed out for a create that never committed (failed validation, admission,
#: dry run, a name already taken) is free again after this many seconds.
_LEAK_AFTER = 120.0


def service_cluster_ips(service: Obj) -> list[str]:
    """The Service's cluster IPs (none for headless and ExternalName Services)."""
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [str(ip) for ip in ips if ip and ip != "None"]


class ServiceIPAllocator:
    """Hands out the cluster IPs of ``cidr`` (IPv4, a loopback range by default).

    Follows the store (:meth:`attach`, :meth:`load`) so that an address is in use exactly while
    a stored Service holds it; addresses handed out for creates that have not committed yet are
    held for two minutes, then freed (the creates failed).
    """

    def __init__(
        self,
        cidr: str = DEFAULT_SERVICE_CIDR,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        network = ipaddress.ip_network(cidr)
        if not isinstance(network, ipaddress.IPv4Network) or network.num_addresses < 16:
            raise ValueError(
                f"service_cidr={cidr!r} must be an IPv4 range of at least 16 addresses "
                "(e.g. 127.96.0.0/16)"
            )
        self.network = network
        self.cidr = str(network)
        self._first = int(network.network_address) + 1
        self._last = int(network.broadcast_address) - 1
        size = self._last - self._first + 1
        self._static_band = min(max(16, size // 16), 256)
        self._clock = clock
        self._rng = rng or random.Random()
        self._owners: dict[str, tuple[str, str]] = {}
        self._reserved: dict[str, tuple[tuple[str, str], float]] = {}

    @property
    def kubernetes_ip(self) -> str:
        """The address of the ``kubernetes`` Service (the range's first)."""
        return str(ipaddress.IPv4Address(self._first))

    def owner(self, ip: str) -> tuple[str, str] | None:
        """The ``(namespace, name)`` of the stored Service holding ``ip``."""
        return self._owners.get(ip)

    # -- following the store ----------------------------------------------------------------

    def attach(self, store: Storage) -> None:
        """Follow Service commits (an address is used while a stored Service holds it)."""
        store.add_listener(self._on_commit)

    async def load(self, store: Storage) -> None:
        """Take the addresses of every stored Service (a durable or restored store)."""
        for stored in (await store.list(SERVICES, None)).items:
            for ip in service_cluster_ips(loads(stored.data)):
                self._owners[ip] = (stored.namespace, stored.name)

    def _on_commit(self, gr: GroupResource, event: StorageEvent) -> None:
        if gr != SERVICES:
            return
        key = (event.obj.namespace, event.obj.name)
        current = set() if event.type is EventType.DELETED else self._ips(event.obj.data)
        previous = self._ips(event.prev.data) if event.prev is not None else set()
        if event.type is EventType.DELETED:
            previous |= self._ips(event.obj.data)
        for ip in previous - current:
            if self._owners.get(ip) == key:
                del self._owners[ip]
        for ip in current:
            self._owners[ip] = key
            self._reserved.pop(ip, None)

    @staticmethod
    def _ips(data: bytes) -> set[str]:
        return set(service_cluster_ips(loads(data)))

    # -- allocation -------------------------------------------------------------------------

    def _free(self, ip: str, key: tuple[str, str], now: float) -> bool:
        owner = self._owners.get(ip)
        if owner is not None:
            return owner == key
        held = self._reserved.get(ip)
        return held is None or held[0] == key or now - held[1] > _LEAK_AFTER

    def allocate(self, namespace: str, name: str, requested: str | None = None) -> str:
        """An address for Service ``namespace/name``: ``requested`` when it is free, else the
        next free one.

        Raises:
            StatusError: 422 when ``requested`` is outside the range or held by another Service
                (kube-apiserver's messages), 500 when the range is full.
        """
        key = (namespace, name)
        now = self._clock()
        if len(self._reserved) > 64:
            self._reserved = {
                ip: held for ip, held in self._reserved.items() if now - held[1] <= _LEAK_AFTER
            }
        if requested:
            try:
                address = ipaddress.ip_address(requested)
            except ValueError:
                address = None
            if address is None or not self._first <= int(address) <= self._last:
                raise self._invalid(
                    name,
                    requested,
                    f"the provided IP ({requested}) is not in the valid range. The range of valid "
                    f"IPs is {self.cidr}",
                )
            if not self._free(requested, key, now):
                raise self._invalid(name, requested, "provided IP is already allocated")
            self._reserved[requested] = (key, now)
            return requested
        size = self._last - self._first + 1
        dynamic_first = self._first + self._static_band
        # The upper band first, from a random offset, then the low band.
        for low, high in ((dynamic_first, self._last), (self._first + 1, dynamic_first - 1)):
            count = high - low + 1
            if count <= 0:
                continue
            start = self._rng.randrange(count)
            for step in range(count):
                candidate = str(ipaddress.IPv4Address(low + (start + step) % count))
                if self._free(candidate, key, now):
                    self._reserved[candidate] = (key, now)
                    return candidate
        raise internal_error(f"failed to allocate a serviceIP: range is full ({size} addresses)")

    def _invalid(self, name: str, requested: str, detail: str) -> Exception:
        return invalid(
            "",
            "Service",
            name,
            [
                FieldError(
                    "Invalid",
                    "spec.clusterIPs",
                    [requested],
                    f"failed to allocate IP {requested}: {detail}",
                )
            ],
        )
