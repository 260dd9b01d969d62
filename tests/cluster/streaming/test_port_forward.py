"""kubectl port-forward through SPDY tunnelled in a WebSocket: HTTP round trips to a Pod and to a
Service's Pod, several connections on one tunnel, and a port nothing listens on."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster, echo_pod, service

pytestmark = pytest.mark.kubectl


@contextmanager
def port_forward(kubectl: Kubectl, *args: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Run ``kubectl port-forward ARGS`` until the block ends; the local port it listens on."""
    process = subprocess.Popen(
        kubectl.command("port-forward", "--address=127.0.0.1", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line)
        assert found, (line, process.stderr.read() if process.poll() is not None else "")
        yield int(found.group(1)), process
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=10)


def test_port_forward_carries_http_to_a_pod_and_through_a_service(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("chat", {"app": "chat"}))
    local.create(ns, echo_pod("chat-0", {"app": "chat"}))
    kubectl("wait", "--for=condition=Ready", "pod/chat-0", "--timeout=60s")
    with port_forward(kubectl, "pod/chat-0", ":5000") as (port, _):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/").text == "chat-0"  # one connection, kept alive
            answer = client.post("/chat", json={"prompt": "through the tunnel"})
            assert answer.json() == {"Result": "chat-0 answers: through the tunnel"}
        for _ in range(3):  # new connections, new stream pairs
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "chat-0"
        large = httpx.post(
            f"http://127.0.0.1:{port}/chat", json={"prompt": "x" * 300_000}, timeout=10
        )
        assert len(large.json()["Result"]) == len("chat-0 answers: ") + 300_000
    with port_forward(kubectl, "svc/chat", ":80") as (port, _):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "chat-0"


def test_a_port_nothing_listens_on_reports_the_error(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, echo_pod("lonely", {"app": "lonely"}))
    kubectl("wait", "--for=condition=Ready", "pod/lonely", "--timeout=60s")
    ip = local.pod_ip(ns, "lonely")
    with port_forward(kubectl, "pod/lonely", ":5999") as (port, process):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        process.wait(timeout=30)  # kubectl gives up the tunnel after the error
        assert process.stderr is not None
        errors = process.stderr.read()
    assert "error forwarding port 5999 to pod lonely, uid " in errors
    assert f"dial tcp4 {ip}:5999: connect: connection refused" in errors
    assert "error: lost connection to pod" in errors
