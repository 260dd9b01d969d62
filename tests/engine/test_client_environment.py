"""KubeClient reads the proxy environment once, when it is built, and not per request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from kaito.engine import KubeClient, ObjectKey, Resource

pytestmark = pytest.mark.anyio
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)


@asynccontextmanager
async def fake_proxy(seen: list[web.BaseRequest]) -> AsyncIterator[int]:
    """An HTTP proxy that answers every request itself with a Namespace."""

    async def handle(request: web.BaseRequest) -> web.Response:
        seen.append(request)
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "proxied"}}
        return web.Response(text=json.dumps(body), content_type="application/json")

    runner = web.ServerRunner(web.Server(handle))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_the_proxy_from_the_environment_is_used_without_per_request_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[web.BaseRequest] = []
    async with fake_proxy(seen) as port:
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, f"http://bob:secret@127.0.0.1:{port}")
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        client = KubeClient(ApiClient(Configuration(host="http://apiserver.example:6443")))
        try:
            session = client.api_client.rest_client.pool_manager
            assert not session.trust_env  # no netrc or proxy lookups in threads per request
            # Changing the environment later changes nothing: it was read once, like client-go.
            monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
            monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
            ns = await client.get(NAMESPACES, ObjectKey("", "proxied"))
        finally:
            await client.close()
    assert ns["metadata"]["name"] == "proxied"
    assert [str(r.url) for r in seen] == ["http://apiserver.example:6443/api/v1/namespaces/proxied"]
    assert seen[0].headers["Proxy-Authorization"] == "Basic Ym9iOnNlY3JldA=="  # bob:secret


async def test_no_proxy_keeps_requests_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    monkeypatch.setenv("NO_PROXY", "apiserver.example")
    monkeypatch.setenv("no_proxy", "apiserver.example")
    client = KubeClient(ApiClient(Configuration(host="http://apiserver.example:6443")))
    try:
        proxy: object = client.api_client.rest_client.proxy
        assert proxy is None
        assert not client.api_client.rest_client.pool_manager.trust_env
    finally:
        await client.close()
