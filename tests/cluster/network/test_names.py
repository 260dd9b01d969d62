"""What Pods know of Services: cluster names in their ``/etc/hosts`` (kept up to date while they
run), headless Services resolving to Pod addresses, Service variables, and the ``kubernetes``
Service leading to the API server."""

from __future__ import annotations

import os

import pytest

from kaito.cluster._json import Obj
from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster, echo_pod, service

pytestmark = pytest.mark.kubectl


def client_pod(name: str) -> Obj:
    """A Pod with the host's tools (busybox) that waits to be exec'd into."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "sh", "image": "busybox", "command": ["sleep", "3600"]}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def resolve(kubectl: Kubectl, pod: str, *names: str) -> dict[str, list[str]]:
    """The addresses each of ``names`` resolves to inside ``pod`` (one exec)."""
    script = 'for n in "$@"; do echo "== $n"; getent ahostsv4 "$n"; done; true'
    found = kubectl("exec", pod, "--", "sh", "-c", script, "sh", *names).stdout
    out: dict[str, set[str]] = {}
    current = ""
    for line in found.splitlines():
        if line.startswith("== "):
            current = line[3:]
            out[current] = set()
        elif "STREAM" in line:
            out[current].add(line.split()[0])
    return {name: sorted(found) for name, found in out.items()}


def hosts_of(kubectl: Kubectl, pod: str, name: str) -> list[str]:
    """The addresses ``name`` resolves to inside ``pod``."""
    return resolve(kubectl, pod, name)[name]


def test_pods_resolve_services_by_name_and_get_their_variables(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("api", {"app": "api"}))
    local.create(ns, echo_pod("api-0", {"app": "api"}))
    local.create(ns, client_pod("client"))
    kubectl("wait", "--for=condition=Ready", "pod/api-0", "pod/client", "--timeout=60s")
    address = local.served(ns, "api", endpoints=1)
    ip = address.cluster_ip
    names = ("api", f"api.{ns}", f"api.{ns}.svc", f"api.{ns}.svc.cluster.local")
    assert resolve(kubectl, "client", *names, "kubernetes.default.svc.cluster.local") == {
        **{name: [ip] for name in names},
        "kubernetes.default.svc.cluster.local": ["127.96.0.1"],
    }

    env = dict(
        line.split("=", 1)
        for line in kubectl("exec", "client", "--", "env").stdout.splitlines()
        if "=" in line
    )
    assert env["API_SERVICE_HOST"] == ip
    assert env["API_SERVICE_PORT"] == env["API_SERVICE_PORT_HTTP"] == "80"
    assert env["API_PORT"] == env["API_PORT_80_TCP"] == f"tcp://{ip}:80"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"

    if os.geteuid() != 0:
        return  # ports 80 and 443 are served elsewhere without root (see test_fallback.py)
    answers = kubectl(
        "exec", "client", "--", "curl", "-s", "-m", "10", "http://api/", "-w", "\\n",
        "http://kubernetes.default.svc:443/version",
    ).stdout.splitlines()  # fmt: skip
    assert answers[0] == "api-0"
    assert '"gitVersion":"v1.32.0-kaito"' in answers[1]


def test_a_running_pod_sees_services_created_after_it_started(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, client_pod("early"))
    kubectl("wait", "--for=condition=Ready", "pod/early", "--timeout=60s")
    assert hosts_of(kubectl, "early", f"late.{ns}.svc.cluster.local") == []
    local.create(ns, service("late", {"app": "late"}))
    assert local.cluster.network is not None
    local.call(local.cluster.network.hosts_current)
    ip = local.get("Service", ns, "late")["spec"]["clusterIP"]
    assert hosts_of(kubectl, "early", f"late.{ns}.svc.cluster.local") == [ip]
    kubectl("delete", "svc", "late")
    local.call(local.cluster.network.hosts_current)
    assert hosts_of(kubectl, "early", f"late.{ns}.svc.cluster.local") == []


def test_a_headless_service_resolves_to_its_pods_and_their_hostnames(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("db", {"app": "db"}, clusterIP="None"))
    for index in range(2):
        local.create(
            ns,
            echo_pod(f"db-{index}", {"app": "db"}, hostname=f"db-{index}", subdomain="db"),
        )
    local.create(ns, client_pod("asker"))
    kubectl("wait", "--for=condition=Ready", "pod/db-0", "pod/db-1", "pod/asker", "--timeout=60s")
    pods = [local.pod_ip(ns, f"db-{index}") for index in range(2)]
    local.wait_ready_endpoints(ns, "db", 2)
    assert local.cluster.network is not None
    local.call(local.cluster.network.hosts_current)
    assert resolve(
        kubectl, "asker", f"db.{ns}.svc.cluster.local", f"db-1.db.{ns}.svc.cluster.local", "db-0.db"
    ) == {
        f"db.{ns}.svc.cluster.local": sorted(pods),
        f"db-1.db.{ns}.svc.cluster.local": [pods[1]],
        "db-0.db": [pods[0]],
    }
    hostname = kubectl("exec", "db-0", "--", "hostname").stdout.strip()
    assert hostname == "db-0"
    assert all(a.name != "db" for a in local.cluster.network.addresses())
