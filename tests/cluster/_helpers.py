"""Helpers for cluster tests: HTTP clients and waiting on store commits instead of sleeping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from kaito.cluster import Cluster

GADGETS = "/apis/testing.kaito.sh/v1beta1/namespaces/{ns}/gadgets"


def gadget(name: str, **fields: Any) -> dict[str, Any]:
    """A valid Gadget body."""
    body: dict[str, Any] = {
        "apiVersion": "testing.kaito.sh/v1beta1",
        "kind": "Gadget",
        "metadata": {"name": name},
        "resource": {"instanceType": "Standard_NC24ads_A100_v4"},
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    }
    body.update(fields)
    return body


def http(cluster: Cluster) -> httpx.AsyncClient:
    """An HTTP client for the cluster's API, with the administrator's credentials."""
    headers = {"Authorization": f"Bearer {cluster.token}"} if cluster.token else {}
    return httpx.AsyncClient(
        base_url=cluster.url,
        headers=headers,
        verify=cluster.admin_ssl_context() or True,
        timeout=10,
    )


async def eventually(
    cluster: Cluster, check: Callable[[], Awaitable[bool]], *, within: float = 10.0
) -> None:
    """Re-run ``check`` after every store commit until it returns true (fails after ``within`` s)."""
    changed = [anyio.Event()]

    def on_commit(*_: object) -> None:
        changed[0].set()

    remove = cluster.store.add_listener(on_commit)
    try:
        with anyio.fail_after(within):
            while True:
                changed[0] = anyio.Event()
                if await check():
                    return
                await changed[0].wait()
    finally:
        remove()


def status_of(response: httpx.Response) -> tuple[int, str, str]:
    """``(code, reason, message)`` of a ``Status`` response."""
    body = response.json()
    assert body["kind"] == "Status", body
    assert body["code"] == response.status_code
    return response.status_code, body.get("reason", ""), body.get("message", "")
