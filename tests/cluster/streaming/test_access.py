"""Streaming requests go through the API server's front door like any other: authentication,
the verbs authorization sees (``create`` on ``pods/exec``, ``pods/attach`` and
``pods/portforward``, ``get`` on ``pods/log``), and a kubelet that runs no containers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kaito.cluster import ThreadedCluster, cluster_in_thread
from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster, local_cluster
from tests.cluster.streaming._pods import pod, sh

pytestmark = pytest.mark.kubectl


@pytest.fixture
def running(local: LocalCluster, ns: str, kubectl: Kubectl) -> str:
    local.create(ns, pod("busy", sh("main", "echo hello; exec sleep 3600")))
    kubectl("wait", "--for=condition=Ready", "pod/busy", "--timeout=60s")
    return "busy"


def test_streaming_verbs_as_authorization_sees_them(
    local: LocalCluster, ns: str, kubectl: Kubectl, running: str
) -> None:
    faults = local.cluster.faults
    with faults.fail(403, times=None, verb="create", resource="pods", subresource="exec") as rule:
        refused = kubectl("exec", running, "--", "true", check=False)
        assert refused.returncode == 1
        assert rule.hits >= 1
    with faults.fail(403, times=None, verb="create", resource="pods", subresource="attach") as rule:
        assert kubectl("attach", running, check=False).returncode == 1
        assert rule.hits >= 1
    with faults.fail(
        403, times=None, verb="create", resource="pods", subresource="portforward"
    ) as rule:
        forward = kubectl("port-forward", running, ":5000", check=False, timeout=30)
        assert forward.returncode == 1
        assert "error upgrading connection" in forward.stderr
        assert rule.hits >= 1
    with faults.fail(403, times=None, verb="get", resource="pods", subresource="log") as rule:
        assert kubectl("logs", running, check=False).returncode == 1
        assert rule.hits == 1
    assert kubectl("logs", running).stdout == "hello\n"


def test_streaming_needs_credentials_and_rbac_permission(tmp_path: Path) -> None:
    with local_cluster(tmp_path, tls=True, authorization="RBAC") as secure:
        cluster = secure.cluster
        url = f"{cluster.url}/api/v1/namespaces/default/pods/x"
        with httpx.Client(verify=cluster.client_ssl_context() or True) as anonymous:
            for sub in ("log", "exec?command=true&stdout=1", "attach?stdout=1", "portforward"):
                answer = anonymous.get(f"{url}/{sub}")
                assert (answer.status_code, answer.json()["reason"]) == (401, "Unauthorized")
        ns = secure.namespace()
        secure.create(ns, pod("busy", sh("main", "echo hello; exec sleep 3600")))
        admin = secure.kubectl(ns)
        admin("wait", "--for=condition=Ready", "pod/busy", "--timeout=60s")
        rules = {
            "reader": [{"apiGroups": [""], "resources": ["pods", "pods/log", "pods/exec"],
                        "verbs": ["get", "list"]}],
            "operator": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                         {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}],
        }  # fmt: skip
        for user, granted in rules.items():
            secure.create(ns, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                               "metadata": {"name": user}, "rules": granted})  # fmt: skip
            secure.create(ns, {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": user},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
            })  # fmt: skip
        as_user = {}
        for user in rules:
            config = tmp_path / f"{user}.kubeconfig"
            config.write_text(json.dumps(cluster.kubeconfig_for_user(user, namespace=ns)))
            as_user[user] = Kubectl(config, tmp_path / f"{user}-cache", ns)
        # Reading logs is get; exec is create, even over a WebSocket upgrade (a GET).
        assert as_user["reader"]("logs", "busy").stdout == "hello\n"
        refused = as_user["reader"]("exec", "busy", "--", "true", check=False)
        assert refused.returncode == 1
        assert (
            f'pods "busy" is forbidden: User "reader" cannot create resource "pods/exec" in API '
            f'group "" in the namespace "{ns}"' in refused.stderr
        )
        assert as_user["operator"]("exec", "busy", "--", "echo", "in").stdout == "in\n"
        assert "forbidden" in as_user["operator"]("logs", "busy", check=False).stderr


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedCluster]:
    with cluster_in_thread(system_node=True) as threaded:
        yield threaded


def test_a_kubelet_that_runs_no_containers_says_so(
    simulated: ThreadedCluster, tmp_path: Path
) -> None:
    kubectl = Kubectl(simulated.write_kubeconfig(tmp_path / "kc"), tmp_path / "cache", "default")
    kubectl("apply", "-f", "-", stdin='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sim"},'
            '"spec":{"containers":[{"name":"c","image":"busybox"}]}}')  # fmt: skip
    kubectl("wait", "--for=condition=Ready", "pod/sim", "--timeout=60s")
    logs = kubectl("logs", "sim", check=False)
    assert logs.returncode == 1
    assert (
        'node "kaito-system" runs no containers (the simulated kubelet): pod sim has no logs, '
        'exec, attach or port-forward; start the cluster with kubelet="local"' in logs.stderr
    )
    assert "runs no containers" in kubectl("exec", "sim", "--", "true", check=False).stderr
