"""The user-space service proxy: what a connection through a cluster IP costs against connecting
to the endpoint directly.

A TCP server on 127.0.0.1 (in this process) is the only endpoint of a selector-less Service; a
client in a worker thread (blocking sockets, so the event loop serves only the proxy and the
server) measures, through ``clusterIP:port`` and then straight to the server:

- ``service_proxy_connection``: the median time to connect, send a 16-byte request, read a
  1 KiB answer and close (a new connection each time, as short HTTP requests are);
- ``service_proxy_throughput``: MB/s of one 64 MiB answer read to the end.
"""

from __future__ import annotations

import logging
import socket
import statistics
import time

CONNECTIONS = 300
ANSWER = 1024
BULK = 64 * 1024 * 1024
_CHUNK = 64 * 1024


def _client(host: str, port: int, expect: int) -> float:
    started = time.perf_counter()
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"%016d" % expect)
        left = expect
        while left:
            data = sock.recv(min(left, 1 << 20))
            if not data:
                raise ConnectionError(f"answer ended {left} bytes short")
            left -= len(data)
    return time.perf_counter() - started


def _measure() -> dict[str, float]:
    import anyio
    import anyio.abc
    import anyio.to_thread
    import structlog

    from kaito.cluster import start_cluster

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results: dict[str, float] = {}
    block = b"x" * _CHUNK

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            request = b""
            while len(request) < 16:
                request += await stream.receive()
            size = int(request[:16])
            while size:
                part = block[: min(size, _CHUNK)]
                await stream.send(part)
                size -= len(part)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            server = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            tg.start_soon(server.serve, serve)
            backend = int(server.extra(anyio.abc.SocketAttribute.local_port))
            async with start_cluster(network=True) as cluster:
                await cluster.create_namespace("bench")
                created = await cluster.client.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": "bench", "namespace": "bench"},
                        "spec": {"ports": [{"name": "tcp", "port": 9000}]},
                    }
                )
                await cluster.client.create(
                    {
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {
                            "name": "bench-1",
                            "namespace": "bench",
                            "labels": {"kubernetes.io/service-name": "bench"},
                        },
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": ["127.0.0.1"]}],
                        "ports": [{"name": "tcp", "port": backend}],
                    }
                )
                assert cluster.network is not None
                proxy = cluster.network.proxy
                with anyio.fail_after(10):
                    while not proxy.endpoints("bench", "bench", 9000):
                        await proxy.changed.wait()
                (address,) = [a for a in cluster.network.addresses() if a.name == "bench"]
                assert address.cluster_ip == created["spec"]["clusterIP"]
                for label, host, port in (
                    ("proxy", address.cluster_ip, address.bound_port),
                    ("direct", "127.0.0.1", backend),
                ):
                    await anyio.to_thread.run_sync(_client, host, port, ANSWER)  # warm-up
                    times = [
                        await anyio.to_thread.run_sync(_client, host, port, ANSWER)
                        for _ in range(CONNECTIONS)
                    ]
                    results[f"{label}_connection"] = statistics.median(times)
                    bulk = await anyio.to_thread.run_sync(_client, host, port, BULK)
                    results[f"{label}_throughput"] = BULK / bulk / 1e6
            tg.cancel_scope.cancel()

    anyio.run(main)
    return results


def run() -> list[str]:
    r = _measure()
    ours_ms, base_ms = r["proxy_connection"] * 1000, r["direct_connection"] * 1000
    ours_mb, base_mb = r["proxy_throughput"], r["direct_throughput"]
    return [
        f"service_proxy_connection[1 KiB answer]: ours={ours_ms:.3f} ms "
        f"baseline[direct to the endpoint]={base_ms:.3f} ms ratio={ours_ms / base_ms:.1f}x",
        f"service_proxy_throughput[64 MiB]: ours={ours_mb:.0f} MB/s "
        f"baseline[direct to the endpoint]={base_mb:.0f} MB/s ratio={ours_mb / base_mb:.2f}x",
    ]
