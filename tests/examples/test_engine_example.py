"""examples/engine: the Widget operator built on kaito.engine, run as its README says (its own
process, kubectl against the in-process cluster), and its pure renderer."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kaito.cluster import ThreadedCluster, cluster_in_thread
from kaito.engine import TerminalError
from tests.deploy.conftest import Kubectl, environment
from tests.embedded.test_kubectl_manager import _free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "engine"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("widget_operator", EXAMPLE / "widget_operator.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rendered_config_map_and_the_terminal_error() -> None:
    example = _example()
    widget = {"metadata": {"name": "w", "namespace": "ns", "uid": "u1"},
              "spec": {"size": "large", "message": "hi"}}  # fmt: skip
    cm = example.desired_config_map(widget)
    assert cm["metadata"]["name"] == "w-widget"
    assert cm["data"] == {"message": "hi", "replicas": "4"}
    assert cm["metadata"]["ownerReferences"][0]["controller"] is True
    widget["spec"]["size"] = "huge"
    with pytest.raises(TerminalError, match=r"spec.size='huge' is not supported; use one of"):
        example.desired_config_map(widget)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ThreadedCluster]:
    with cluster_in_thread() as running:
        yield running


def _printed(flag: str) -> str:
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "widget_operator.py"), flag],
        env=environment(), capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


@pytest.mark.kubectl
def test_the_widget_operator_runs_as_its_readme_says(
    cluster: ThreadedCluster, tmp_path: Path
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    kubectl = Kubectl(kubeconfig, tmp_path / "cache", "default")
    kubectl("apply", "-f", "-", stdin=_printed("--print-crd"))
    kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    kubectl("create", "namespace", "widgets-system")
    probe, metrics = _free_port(), _free_port()
    operator = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "widget_operator.py"), "--kubeconfig", str(kubeconfig),
         "--health-probe-bind-address", f"127.0.0.1:{probe}",
         "--metrics-bind-address", f"127.0.0.1:{metrics}"],
        env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{probe}/readyz", timeout=1)
                break
            except OSError:
                assert operator.poll() is None and time.monotonic() < deadline, "not ready"
                time.sleep(0.1)

        kubectl("apply", "-f", "-", stdin=_printed("--print-widget"))
        kubectl("wait", "--for=jsonpath={.status.phase}=Ready", "widget/hello", "--timeout=30s")
        data = kubectl("get", "configmap", "hello-widget", "-o",
                       "jsonpath={.data.message}/{.data.replicas}").stdout  # fmt: skip
        assert data == "hello from a widget/1"
        assert "PHASE" in kubectl("get", "widgets").stdout  # the printer columns

        kubectl("patch", "widget", "hello", "--type=merge", "-p", '{"spec":{"size":"large"}}')
        kubectl("wait", "--for=jsonpath={.data.replicas}=4", "configmap/hello-widget",
                "--timeout=30s")  # fmt: skip
        kubectl("delete", "configmap", "hello-widget")  # the operator puts it back
        kubectl("wait", "--for=jsonpath={.data.replicas}=4", "configmap/hello-widget",
                "--timeout=30s")  # fmt: skip

        kubectl("patch", "widget", "hello", "--type=merge", "-p", '{"spec":{"size":"huge"}}')
        kubectl("wait", "--for=jsonpath={.status.phase}=Failed", "widget/hello", "--timeout=30s")
        message = kubectl("get", "widget", "hello", "-o", "jsonpath={.status.message}").stdout
        assert message == "spec.size='huge' is not supported; use one of: large, small"
        events = kubectl("get", "events", "--field-selector", "reason=InvalidSpec", "-o",
                         "jsonpath={.items[*].type}").stdout  # fmt: skip
        assert events.split()[0] == "Warning"
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
        text = body.decode()
        assert 'controller_runtime_terminal_reconcile_errors_total{controller="widget"}' in text
        assert 'controller_runtime_reconcile_total{controller="widget",result="success"}' in text

        kubectl("delete", "widget", "hello", "--wait", "--timeout=30s")
        kubectl("wait", "--for=delete", "configmap/hello-widget", "--timeout=30s")
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            code = operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
            raise AssertionError("the operator did not stop within 30 s of SIGTERM") from None
        output = operator.stdout.read() if operator.stdout else ""
    assert code == 0, output
    assert "leader_election_acquired" in output, output
    assert "leader_election_released" in output, output  # a standby would take over at once
