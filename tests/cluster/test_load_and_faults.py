"""Load and faults for the API server (issue 13): slow uploaders, clients that disconnect mid-way
and bursts run beside normal traffic, whose success rate and latency are measured and asserted
loosely. The server runs in a child process so the load generator does not share its GIL."""

from __future__ import annotations

import ssl
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httpx
import pytest

from kaito.cluster import Cluster
from kaito.cluster._http import _negotiation
from tests.cluster._helpers import http, status_of
from tests.cluster._process import ServerProcess, server_process

pytestmark = pytest.mark.anyio
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
SLOW_UPLOADERS = 32


def config_map(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


class Traffic:
    """Normal traffic: create, read and delete ConfigMaps; every request's latency and outcome."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.count = 0

    async def _timed(self, call: Callable[[], Awaitable[httpx.Response]], ok: int) -> None:
        started = time.perf_counter()
        try:
            response = await call()
        except httpx.HTTPError as error:
            self.failures.append(repr(error))
            return
        self.latencies.append(time.perf_counter() - started)
        if response.status_code != ok:
            self.failures.append(f"{response.status_code} {response.text[:200]}")

    async def run(self, rounds: int, prefix: str) -> None:
        for i in range(rounds):
            name = f"{prefix}-{i}"
            await self._timed(lambda n=name: self.client.post(CONFIGMAPS, json=config_map(n)), 201)
            await self._timed(lambda n=name: self.client.get(f"{CONFIGMAPS}/{n}"), 200)
            await self._timed(lambda n=name: self.client.delete(f"{CONFIGMAPS}/{n}"), 200)
            self.count += 3

    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]

    def success_rate(self) -> float:
        return 1 - len(self.failures) / max(1, self.count)


async def _connect(server: ServerProcess) -> anyio.abc.ByteStream:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    if parts.scheme == "https":
        context = server.verify if isinstance(server.verify, ssl.SSLContext) else None
        return await anyio.connect_tcp(
            parts.hostname, parts.port, tls=True, ssl_context=context, tls_standard_compatible=False
        )
    return await anyio.connect_tcp(parts.hostname, parts.port)


def _head(server: ServerProcess, method: str, path: str, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(server.url).netloc}"]
    lines += [f"{key}: {value}" for key, value in server.headers.items()]
    if length is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def slow_uploader(server: ServerProcess, stop: anyio.Event) -> None:
    """Announce a 100 kB body and send one byte every 200 ms until told to stop."""
    with anyio.CancelScope() as scope:
        async with await _connect(server) as stream:
            await stream.send(_head(server, "POST", CONFIGMAPS, 100_000))
            await stream.send(b'{"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "')
            while not stop.is_set():
                await stream.send(b"x")
                with anyio.move_on_after(0.2):
                    await stop.wait()
        scope.cancel()


async def disconnecting_clients(server: ServerProcess, stop: anyio.Event) -> int:
    """Clients that give up half-way: mid-body, mid-watch, mid-list."""
    rounds = 0
    while not stop.is_set():
        async with await _connect(server) as stream:
            await stream.send(_head(server, "POST", CONFIGMAPS, 5_000) + b'{"apiVersion": "v1"')
        async with await _connect(server) as stream:
            await stream.send(_head(server, "GET", f"{CONFIGMAPS}?watch=true"))
            with anyio.move_on_after(0.2):
                await stream.receive()
        async with await _connect(server) as stream:
            await stream.send(_head(server, "GET", "/api/v1/configmaps"))
        rounds += 1
        await anyio.sleep(0.05)
    return rounds


async def bursts(server: ServerProcess, stop: anyio.Event) -> list[int]:
    """Every half second, 50 requests at once (creates and lists) from one client."""
    codes: list[int] = []
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, verify=server.verify, limits=limits, timeout=60
    ) as client:
        burst = 0
        while not stop.is_set():
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    if i % 2:
                        tg.start_soon(_record, codes, client.get(CONFIGMAPS))
                    else:
                        body = config_map(f"burst-{burst}-{i}")
                        tg.start_soon(_record, codes, client.post(CONFIGMAPS, json=body))
            burst += 1
            with anyio.move_on_after(0.5):
                await stop.wait()
    return codes


async def _record(codes: list[int], request: Awaitable[httpx.Response]) -> None:
    codes.append((await request).status_code)


async def test_normal_traffic_survives_slow_disconnecting_and_bursty_clients() -> None:
    with server_process() as server:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, verify=server.verify, timeout=60
        ) as client:
            await Traffic(client).run(5, "warm")
            quiet = Traffic(client)
            await quiet.run(20, "quiet")
            loaded = Traffic(client)
            stop = anyio.Event()
            burst_codes: list[int] = []
            disconnects: list[int] = []

            async def collect_bursts() -> None:
                burst_codes.extend(await bursts(server, stop))

            async def collect_disconnects() -> None:
                disconnects.append(await disconnecting_clients(server, stop))

            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    for _ in range(SLOW_UPLOADERS):
                        tg.start_soon(slow_uploader, server, stop)
                    tg.start_soon(collect_disconnects)
                    tg.start_soon(collect_bursts)
                    await anyio.sleep(0.5)  # the faults are under way
                    await loaded.run(25, "loaded")
                    stop.set()
            health = await client.get("/version")
        print(
            f"normal traffic: quiet p95={quiet.p95() * 1000:.1f} ms "
            f"success={quiet.success_rate():.1%}; under load p95={loaded.p95() * 1000:.1f} ms "
            f"success={loaded.success_rate():.1%} ({SLOW_UPLOADERS} slow uploaders, "
            f"{disconnects[0]} rounds of disconnecting clients, {len(burst_codes)} burst requests)"
        )
        assert quiet.failures == [] and loaded.failures == []
        assert loaded.p95() <= max(20 * quiet.p95(), 1.0)
        assert health.status_code == 200
        assert burst_codes and all(code in (200, 201) for code in burst_codes)


async def test_a_body_that_never_arrives_gets_504(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_negotiation, "BODY_READ_TIMEOUT", 0.3)
    parts = urlsplit(cluster.url)
    assert parts.hostname is not None and parts.port is not None
    async with await anyio.connect_tcp(parts.hostname, parts.port) as stream:
        head = (
            f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        await stream.send(head.encode())
        with anyio.fail_after(10):
            answer = await stream.receive()
    assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
    assert b'"reason":"Timeout"' in answer
    async with http(cluster) as client:
        fine = await client.post(CONFIGMAPS, json=config_map("after"))
        assert fine.status_code == 201, status_of(fine)
