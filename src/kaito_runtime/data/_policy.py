"""Which URLs the input fetch may download from, checked on the name and on every address.

Runtime layer (tuning Job init container). The admission webhook refuses loopback, private,
link-local and cloud-metadata hosts; this module enforces the same rule where the bytes are
fetched, including on the addresses a host name resolves to at connect time (so a name that
re-resolves to ``127.0.0.1`` after the webhook checked it is still refused) and on redirects.
Only an explicit local-development setting (``allow_local``) lets loopback and private
addresses through; cloud metadata endpoints are refused always.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import attrs
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from kaito_runtime.data._errors import UrlRefusedError

__all__ = ("ALLOWED_SCHEMES", "GuardedResolver", "UrlPolicy")

ALLOWED_SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints (Azure/AWS/GCP 169.254.169.254, AWS IPv6, Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.azure.internal"})
LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@attrs.frozen
class UrlPolicy:
    """The download policy: http(s) only, public addresses only unless ``allow_local``."""

    allow_local: bool = False

    def check_url(self, url: str) -> str:
        """Return the URL's host after checking scheme and host; raise UrlRefusedError.

        An IP-literal host is checked here; a host name is checked again on every address it
        resolves to (see :class:`GuardedResolver`).
        """
        parts = urlsplit(url)
        if parts.scheme not in ALLOWED_SCHEMES:
            raise UrlRefusedError(
                f"input URL {url!r} has scheme {parts.scheme or '(none)'!r}; "
                "use an http:// or https:// URL"
            )
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise UrlRefusedError(f"input URL {url!r} has no host; use http(s)://HOST/PATH")
        if host in METADATA_HOSTS:
            raise UrlRefusedError(
                f"input URL {url!r} points at a cloud metadata host ({host}); "
                "serve the data from a public http(s) server"
            )
        if host in LOCAL_HOSTS and not self.allow_local:
            raise UrlRefusedError(
                f"input URL {url!r} points at loopback host {host!r}; serve the data from a "
                "public http(s) server (loopback is allowed only with --allow-local)"
            )
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return host
        self.check_address(literal, source=f"input URL {url!r}")
        return host

    def check_address(self, address: IPAddress, *, source: str) -> None:
        """Raise UrlRefusedError if ``address`` may not be connected to; ``source`` names it."""
        plain = _unmapped(address)
        if plain in METADATA_ADDRESSES:
            raise UrlRefusedError(
                f"{source} resolves to the cloud metadata address {plain}; "
                "serve the data from a public http(s) server"
            )
        if plain.is_global and not plain.is_multicast:
            return
        if self.allow_local and (plain.is_loopback or plain.is_private or plain.is_link_local):
            return
        kind = (
            "loopback"
            if plain.is_loopback
            else "link-local"
            if plain.is_link_local
            else "multicast"
            if plain.is_multicast
            else "private or reserved"
        )
        raise UrlRefusedError(
            f"{source} resolves to {kind} address {plain}; serve the data from a "
            "public http(s) server (loopback and private addresses are allowed only with "
            "--allow-local, for local development)"
        )


class GuardedResolver(AbstractResolver):
    """Resolve host names and refuse the whole host if any address breaks the policy.

    aiohttp connects only to the addresses a resolver returns, so checking here closes the gap
    between "the name was checked" and "the socket connected" (DNS rebinding).
    """

    def __init__(self, policy: UrlPolicy, *, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and check each address; raise UrlRefusedError on any refusal."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            self._policy.check_address(address, source=f"input host {host.rstrip('.')!r}")
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()
