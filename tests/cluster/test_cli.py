"""``kaito cluster serve``: a standalone cluster that kubectl uses through the written kubeconfig."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kaito.cli import main

ENTRY = "from kaito.cli import main; main()"


@pytest.mark.kubectl
def test_serve_writes_a_kubeconfig_kubectl_uses_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    crds = Path(__file__).parent / "data" / "gadgets.testing.kaito.sh.yaml"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "cluster",
            "serve",
            "--kubeconfig-out",
            str(kubeconfig),
            "--crds",
            str(crds),
            "--node",
            "gpu-1=2",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("cluster ready at https://127.0.0.1:"), ready + (
            server.stderr.read() if server.stderr else ""
        )
        base = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
        nodes = subprocess.run(
            [*base, "get", "nodes", "-o", "jsonpath={.items[0].status.capacity.nvidia\\.com/gpu}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert nodes.stdout == "2"
        crd = subprocess.run(
            [*base, "get", "crd", "-o", "name"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert (
            crd.stdout.strip()
            == "customresourcedefinition.apiextensions.k8s.io/gadgets.testing.kaito.sh"
        )
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_plain_http_is_refused_off_loopback() -> None:
    result = CliRunner().invoke(main, ["cluster", "serve", "--host", "0.0.0.0", "--no-tls"])
    assert result.exit_code == 2
    assert "plain HTTP is only served on loopback" in result.output
    bad_node = CliRunner().invoke(main, ["cluster", "serve", "--no-tls", "--node", "gpu=x"])
    assert bad_node.exit_code == 2
    assert "NAME or NAME=GPUS" in bad_node.output
