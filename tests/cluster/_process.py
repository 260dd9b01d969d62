"""An in-process cluster run in a child process, for tests that measure the server itself (its
memory, its latency under load) without the test's own work in the same interpreter."""

from __future__ import annotations

import multiprocessing
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import attrs
import httpx

from tests.cluster.conftest import GADGETS_CRD


@attrs.frozen
class ServerProcess:
    """Where the child's cluster listens, how to reach it, and the child's PID."""

    url: str
    headers: dict[str, str]
    verify: ssl.SSLContext | bool
    pid: int

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers=self.headers,
            verify=self.verify,
            **kwargs,  # type: ignore[arg-type]
        )


def _serve(conn: Connection, crds: list[str]) -> None:
    """Run a cluster in this (child) process until the parent closes the pipe."""
    import anyio

    from kaito.cluster import start_cluster

    async def main() -> None:
        async with start_cluster(port=0, crds=[Path(c) for c in crds]) as cluster:
            conn.send({"url": cluster.url, "token": cluster.token, "ca": cluster.ca_pem})
            await anyio.to_thread.run_sync(_wait_for_eof, conn)

    anyio.run(main)


def _wait_for_eof(conn: Connection) -> None:
    try:
        conn.recv()
    except EOFError:
        return


@contextmanager
def server_process() -> Iterator[ServerProcess]:
    """Start the child, yield how to reach it, and stop it (by closing the pipe, then by PID)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, [str(GADGETS_CRD)]))
    process.start()
    try:
        assert parent.poll(120), "the cluster process did not start"
        info = parent.recv()
        verify: ssl.SSLContext | bool = True
        if info["ca"]:
            verify = ssl.create_default_context(cadata=info["ca"].decode())
        headers = {"Authorization": f"Bearer {info['token']}"} if info["token"] else {}
        assert process.pid is not None
        yield ServerProcess(info["url"], headers, verify, process.pid)
    finally:
        parent.close()
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
