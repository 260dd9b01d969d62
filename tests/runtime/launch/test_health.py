"""The exec probes of multi-node pods against a real HTTP server and a closed port (the Ray GCS
side is in ``test_ray_cluster.py``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kaito_runtime.launch import HealthCheck, check_health


class Server:
    """A loopback server whose ``/health`` answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(owner.status if self.path == "/health" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


def _check(probe: str, port: int, *, leader: bool = True, **kwargs: Any) -> tuple[bool, str]:
    return check_health(
        HealthCheck(
            probe=probe,  # type: ignore[arg-type]
            is_leader=leader,
            leader_address="127.0.0.1",
            server_port=port,
            ray_port=port,
            timeout=2.0,
            **kwargs,
        )
    )


def test_the_leader_is_ready_when_its_server_is_healthy(server: Server) -> None:
    assert _check("readiness", server.port) == (
        True,
        f"http://127.0.0.1:{server.port}/health answered 200",
    )
    server.status = 503
    healthy, reason = _check("readiness", server.port)
    assert not healthy
    assert reason.endswith("answered 503")


def test_an_unreachable_server_or_gcs_is_unhealthy_with_the_reason() -> None:
    port = _closed_port()
    healthy, reason = _check("readiness", port)
    assert not healthy
    assert reason.startswith(f'Get "http://127.0.0.1:{port}/health": ')
    healthy, reason = _check("liveness", port, nodes=2)
    assert not healthy
    assert reason.startswith("the Ray GCS is not reachable: 127.0.0.1:")
    assert "refused" in reason


def test_workers_leave_both_probes_to_the_leader() -> None:
    port = _closed_port()
    for probe in ("readiness", "liveness"):
        assert _check(probe, port, leader=False) == (
            True,
            f"worker: {probe} is decided on the leader",
        )
