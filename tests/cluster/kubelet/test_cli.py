"""``kaito cluster serve --kubelet local --system-node``: kubectl's Pods run for real, and stopping
the server stops them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.kubelet._helpers import alive

ENTRY = "from kaito.cli import main; main()"


def _descendants(root: int) -> set[int]:
    """Live processes below ``root`` (the server's children, their children ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if fields and fields[0] != b"Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    for pid in parents:
        current = pid
        while current in parents and current not in (0, 1):
            current = parents[current]
            if current == root:
                found.add(pid)
                break
    return found


@pytest.mark.kubectl
def test_serve_with_the_local_kubelet_runs_pods_and_stops_them(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    server = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "cluster", "serve", "--kubeconfig-out", str(kubeconfig),
         "--kubelet", "local", "--system-node", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("cluster ready at https://127.0.0.1:")
        base = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]

        def kubectl(*args: str) -> str:
            return subprocess.run(
                [*base, *args], capture_output=True, text=True, check=True, timeout=60
            ).stdout

        kubectl("run", "once", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hi")
        kubectl("run", "server", "--image=busybox", "--", "sleep", "1000")
        kubectl("wait", "pod/once", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=60s")
        kubectl("wait", "pod/server", "--for=condition=Ready", "--timeout=60s")
        assert kubectl("get", "pod", "server", "-o", "jsonpath={.spec.nodeName}") == "kaito-system"
        assert kubectl("get", "pod", "server", "-o", "jsonpath={.status.podIP}").startswith(
            "127.1."
        )
        running = _descendants(server.pid)
        assert running, "the server's pod runs no process"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in running)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
