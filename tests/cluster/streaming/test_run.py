"""The guide's temporary curl Pod: ``kubectl run -it --rm --restart=Never curl
--image=curlimages/curl -- curl -X POST http://$CLUSTERIP/chat ...`` prints the server's answer
and deletes the Pod, on a terminal and without one."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster, echo_pod, service
from tests.cluster.streaming._terminal import run_in_terminal

pytestmark = pytest.mark.kubectl

GUIDE = """\
export CLUSTERIP=$(kubectl get svc workspace-phi-3-mini-adapter -o jsonpath="{.spec.clusterIPs[0]}")
kubectl run -it --rm --restart=Never curl --image=curlimages/curl -- curl -X POST http://$CLUSTERIP/chat -H "accept: application/json" -H "Content-Type: application/json" -d "{\\"prompt\\":\\"YOUR QUESTION HERE\\"}"
"""
ANSWER = '{"Result": "workspace-phi-3-mini-adapter-0 answers: YOUR QUESTION HERE"}'


@pytest.fixture
def guide_env(local: LocalCluster, ns: str, kubectl: Kubectl) -> dict[str, str]:
    """The inference Service of the guide with a Pod answering ``/chat``; the environment of
    a shell whose kubeconfig points at its namespace."""
    if os.geteuid() != 0:
        pytest.skip("the guide's curl uses port 80 of the cluster IP, which needs root here")
    name = "workspace-phi-3-mini-adapter"
    local.create(ns, service(name, {"app": "phi-3"}))
    local.create(ns, echo_pod(f"{name}-0", {"app": "phi-3"}))
    kubectl("wait", "--for=condition=Ready", f"pod/{name}-0", "--timeout=60s")
    local.served(ns, name, endpoints=1)
    config = local.cluster.write_kubeconfig(local.tmp / f"guide-{ns}", namespace=ns)
    return {"KUBECONFIG": str(config), "KUBECACHEDIR": str(local.tmp / "kube-cache")}


def test_the_guides_curl_pod_prints_the_answer_on_a_terminal_and_is_deleted(
    guide_env: dict[str, str], kubectl: Kubectl
) -> None:
    code, output = run_in_terminal(["bash", "-ec", GUIDE], env=guide_env, timeout=90)
    text = output.decode(errors="replace")
    assert code == 0, text
    assert ANSWER in text
    assert 'pod "curl" deleted' in text
    gone = kubectl("get", "pod", "curl", check=False)
    assert 'pods "curl" not found' in gone.stderr


def test_the_guides_curl_pod_without_a_terminal(
    guide_env: dict[str, str], kubectl: Kubectl
) -> None:
    done = subprocess.run(
        ["bash", "-ec", GUIDE],
        env={**os.environ, **guide_env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ANSWER in done.stdout
    assert "Unable to use a TTY" in done.stderr
    assert 'pod "curl" deleted' in done.stdout
    assert "NotFound" in kubectl("get", "pod", "curl", check=False).stderr
