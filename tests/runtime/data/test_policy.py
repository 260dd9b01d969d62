"""The URL policy: scheme, host names, IP literals, resolved addresses (DNS rebinding)."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from kaito_runtime.data import GuardedResolver, UrlPolicy, UrlRefusedError


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        pytest.param("ftp://example.com/a.parquet", "scheme 'ftp'", id="ftp"),
        pytest.param("file:///etc/passwd", "scheme 'file'", id="file"),
        pytest.param("https:///a.parquet", "has no host", id="no-host"),
        pytest.param("http://127.0.0.1:8080/a", "loopback address 127.0.0.1", id="loopback"),
        pytest.param("http://localhost/a", "loopback host 'localhost'", id="localhost"),
        pytest.param("http://10.1.2.3/a", "private or reserved address 10.1.2.3", id="private"),
        pytest.param("http://192.168.0.5/a", "private or reserved", id="private-192"),
        pytest.param("http://169.254.169.254/latest", "cloud metadata address", id="metadata"),
        pytest.param("http://169.254.10.1/", "link-local address", id="link-local"),
        pytest.param("http://[::1]/a", "loopback address ::1", id="ipv6-loopback"),
        pytest.param("http://[::ffff:127.0.0.1]/a", "loopback address 127.0.0.1", id="v4-mapped"),
        pytest.param("http://[fd00:ec2::254]/", "cloud metadata address", id="aws-v6-metadata"),
        pytest.param("http://metadata.google.internal/x", "cloud metadata host", id="gcp-name"),
        pytest.param("http://0.0.0.0/a", "address 0.0.0.0", id="unspecified"),
    ],
)
def test_refused_urls_name_the_reason(url: str, fragment: str) -> None:
    with pytest.raises(UrlRefusedError) as err:
        UrlPolicy().check_url(url)
    assert fragment in str(err.value)
    assert "http" in str(err.value)  # every message says what to use instead


def test_public_urls_pass_and_return_the_host() -> None:
    policy = UrlPolicy()
    assert policy.check_url("https://huggingface.co/d/a.parquet?download=true") == "huggingface.co"
    assert policy.check_url("http://8.8.8.8/a") == "8.8.8.8"


def test_allow_local_admits_loopback_and_private_but_never_metadata() -> None:
    policy = UrlPolicy(allow_local=True)
    assert policy.check_url("http://127.0.0.1:9/a") == "127.0.0.1"
    assert policy.check_url("http://localhost/a") == "localhost"
    assert policy.check_url("http://10.0.0.1/a") == "10.0.0.1"
    with pytest.raises(UrlRefusedError, match="metadata"):
        policy.check_url("http://169.254.169.254/")


class _FixedResolver(AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


@pytest.mark.anyio
async def test_a_name_resolving_to_loopback_is_refused_at_connect_time() -> None:
    resolver = GuardedResolver(UrlPolicy(), inner=_FixedResolver(["93.184.216.34", "127.0.0.1"]))
    with pytest.raises(UrlRefusedError) as err:
        await resolver.resolve("data.example.com", 443)
    assert "input host 'data.example.com' resolves to loopback address 127.0.0.1" in str(err.value)


@pytest.mark.anyio
async def test_a_name_resolving_to_public_addresses_passes() -> None:
    resolver = GuardedResolver(UrlPolicy(), inner=_FixedResolver(["93.184.216.34"]))
    results = await resolver.resolve("data.example.com", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]
