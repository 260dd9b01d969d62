"""A burst of 200 concurrent requests: every one is answered 200 or 429, memory stays bounded."""

from __future__ import annotations

import anyio
import httpx
import psutil
import pytest

from tests.runtime.inference.conftest import SERVER_CONCURRENCY, RunningServer

pytestmark = pytest.mark.anyio

BURST = 200
# Each admitted request holds a few KB of tensors; a leak per request would show well above this.
RSS_GROWTH_LIMIT = 150 * 1024 * 1024


async def test_burst_of_200_gets_200_or_429_with_bounded_memory(server: RunningServer) -> None:
    process = psutil.Process(server.process.pid)
    statuses: list[int] = []
    retry_after: set[str | None] = set()
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "temperature": 0}
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as client:
        await client.post("/v1/chat/completions", json=body)  # warm-up
        rss_before = process.memory_info().rss

        async def one() -> None:
            response = await client.post("/v1/chat/completions", json=body)
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.add(response.headers.get("retry-after"))

        async with anyio.create_task_group() as tg:
            for _ in range(BURST):
                tg.start_soon(one)
        rss_after = process.memory_info().rss
        health = await client.get("/health")
        metrics = (await client.get("/metrics")).text

    assert len(statuses) == BURST
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= SERVER_CONCURRENCY
    assert statuses.count(429) > 0
    assert retry_after == {"1"}
    assert rss_after - rss_before < RSS_GROWTH_LIMIT
    assert health.status_code == 200
    rejected = (
        f'kaito_inference_requests_rejected_total{{reason="overloaded"}} {statuses.count(429)}'
    )
    assert rejected in metrics
