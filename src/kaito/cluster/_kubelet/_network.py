"""Pod and node addresses on loopback: every Pod gets an IP of its own in ``127.1.0.0/16`` and
every Node a host IP in ``127.2.0.0/16``.

Linux routes all of ``127.0.0.0/8`` to the loopback interface, so a process can bind any of
these addresses without configuration, and two Pods can both listen on port 5000 as long as each
binds its own IP (what the downward API's ``status.podIP`` is for).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable

__all__ = ("DEFAULT_NODE_CIDR", "DEFAULT_POD_CIDR", "AddressPool", "AddressPoolExhausted")

DEFAULT_POD_CIDR = "127.1.0.0/16"
DEFAULT_NODE_CIDR = "127.2.0.0/16"


class AddressPoolExhausted(RuntimeError):
    """Every address of the range is in use."""


class AddressPool:
    """Hands out the addresses of one range, one per key, round robin (like host-local IPAM:
    an address released is not handed out again until the range wraps)."""

    def __init__(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr)
        if not network.is_loopback:
            raise ValueError(f"cidr={cidr!r} is not a loopback range; use a subnet of 127.0.0.0/8")
        self.network = network
        # .0 is the network address and .1 the conventional gateway; start after them.
        self._first = int(network.network_address) + 2
        self._last = int(network.broadcast_address) - 1
        self._next = self._first
        self._by_key: dict[Hashable, str] = {}
        self._used: set[str] = set()

    def allocate(self, key: Hashable) -> str:
        """The key's address (the same one while it holds it)."""
        held = self._by_key.get(key)
        if held is not None:
            return held
        size = self._last - self._first + 1
        for _ in range(size):
            candidate = str(ipaddress.ip_address(self._next))
            self._next = self._first if self._next >= self._last else self._next + 1
            if candidate not in self._used:
                self._used.add(candidate)
                self._by_key[key] = candidate
                return candidate
        raise AddressPoolExhausted(
            f"all {size} addresses of {self.network} are in use; release Pods or use a larger range"
        )

    def release(self, key: Hashable) -> None:
        """Give the key's address back (nothing if it holds none)."""
        address = self._by_key.pop(key, None)
        if address is not None:
            self._used.discard(address)

    def __contains__(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in self.network
        except ValueError:
            return False

    @property
    def in_use(self) -> int:
        """How many addresses are held."""
        return len(self._used)
