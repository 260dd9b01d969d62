"""A user's session: `kaito manager` as its own process against a cluster, driven with kubectl."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaito.api import workspace_crd
from kaito.cluster import ThreadedCluster, cluster_in_thread

pytestmark = pytest.mark.kubectl
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ThreadedCluster]:
    with cluster_in_thread(crds=[workspace_crd()]) as running:
        running.write_kubeconfig(tmp_path / "kubeconfig")
        yield running


@pytest.fixture
def kubectl(tmp_path: Path, cluster: ThreadedCluster):  # type: ignore[no-untyped-def]
    def run(
        *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(tmp_path / "kubeconfig"), "--cache-dir",
             str(tmp_path / "cache"), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    return run


@pytest.fixture
def manager(tmp_path: Path, cluster: ThreadedCluster) -> Iterator[tuple[int, int]]:
    probe, metrics = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from kaito.cli import main; main()", "manager",
         "--kubeconfig", str(tmp_path / "kubeconfig"), "--no-webhook",
         "--health-probe-bind-address", f"127.0.0.1:{probe}",
         "--metrics-bind-address", f"127.0.0.1:{metrics}", "--log-format", "console"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{probe}/readyz", timeout=1)
                break
            except OSError as err:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read() if proc.stdout else ""
                    raise AssertionError(f"manager did not become ready: {output}") from err
                time.sleep(0.1)
        yield probe, metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the manager did not stop within 30 s of SIGTERM") from None
        assert code == 0, proc.stdout.read() if proc.stdout else ""


def test_a_user_session(kubectl, manager: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    _, metrics = manager
    kubectl("apply", "-f", str(REPO / "examples/inference/kaito_workspace_phi_3.yaml"))
    kubectl("apply", "-f", str(REPO / "examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml"))
    kubectl("wait", "--for=condition=WorkspaceReady", "workspace/workspace-phi-3-mini",
            "workspace/workspace-tuning-phi-3", "--timeout=60s")  # fmt: skip

    table = kubectl("get", "workspace").stdout.splitlines()
    assert table[0].split() == [
        "NAME", "INSTANCE", "RESOURCEREADY", "INFERENCEREADY", "JOBSTARTED",
        "WORKSPACESUCCEEDED", "WORKSPACEREADY", "STATE", "AGE",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["workspace-phi-3-mini"][1:6] == ["Standard_NC6s_v3", "True", "True", "True", "True"]
    assert rows["workspace-phi-3-mini"][6] == "Ready"
    assert rows["workspace-tuning-phi-3"][5:7] == ["True", "Succeeded"]
    guide = kubectl("get", "workspaces.v1alpha1.kaito.sh").stdout.splitlines()
    assert guide[0].split() == ["NAME", "INSTANCE", "RESOURCEREADY", "INFERENCEREADY",
                                "WORKSPACEREADY", "AGE"]  # fmt: skip

    described = kubectl("describe", "workspace", "workspace-phi-3-mini").stdout
    assert "WorkloadCreated" in described
    assert "InferenceReadyTrue" in described
    svc = kubectl("get", "svc", "workspace-phi-3-mini").stdout
    assert "80/TCP,29500/TCP" in svc

    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read().decode()
    assert 'controller_runtime_reconcile_total{controller="workspace",result="success"}' in body

    kubectl("delete", "workspace", "workspace-phi-3-mini", "workspace-tuning-phi-3", "--wait",
            "--timeout=60s")  # fmt: skip
    assert "No resources found" in kubectl("get", "nodes", "-l", "kaito.sh/workspace").stderr
