"""Services on loopback with the real kubectl: unique cluster IPs kept in the Service's spec, a
proxy on every cluster IP that balances connections over the ready endpoints round robin and
skips endpoints that refuse, endpoints that follow readiness, port 80 from the host exactly as
the guide writes it."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import httpx
import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster, echo_pod, service

pytestmark = pytest.mark.kubectl


def _pinned(name: str, cluster_ip: str) -> str:
    """A Service manifest that asks for ``cluster_ip``."""
    return json.dumps(
        {
            **service(name, {"app": name}),
            "spec": {**service(name, {})["spec"], "clusterIP": cluster_ip},
        }
    )


def get_from(url: str) -> str:
    """One request on a connection of its own."""
    with httpx.Client(timeout=10) as client:
        return client.get(url).text


def test_cluster_ips_are_unique_in_a_loopback_range_and_kept_in_the_spec(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    kubernetes = kubectl("get", "svc", "kubernetes", "-n", "default", "-o", "json").stdout
    assert '"clusterIP": "127.96.0.1"' in kubernetes
    for index in range(12):
        local.create(ns, service(f"svc-{index}", {"app": f"a{index}"}))
    listed = kubectl(
        "get",
        "svc",
        "-o",
        "jsonpath={range .items[*]}{.spec.clusterIPs[0]} {.spec.ipFamilies[0]} "
        "{.spec.ipFamilyPolicy}{'\\n'}{end}",
    ).stdout.split("\n")
    rows = [line.split() for line in listed if line]
    addresses = [row[0] for row in rows]
    assert len(set(addresses)) == 12
    assert "127.96.0.1" not in addresses
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.96.0.0/16") for a in addresses)
    assert {tuple(row[1:]) for row in rows} == {("IPv4", "SingleStack")}

    taken = addresses[0]
    clash = kubectl("apply", "-f", "-", stdin=_pinned("clash", taken), check=False)
    assert clash.returncode == 1
    assert (
        f'The Service "clash" is invalid: spec.clusterIPs: Invalid value: ["{taken}"]: failed to '
        f"allocate IP {taken}: provided IP is already allocated" in clash.stderr
    )
    outside = kubectl("apply", "-f", "-", stdin=_pinned("outside", "10.0.0.5"), check=False)
    assert "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is " \
        "127.96.0.0/16" in outside.stderr  # fmt: skip

    kubectl("delete", "svc", "svc-0")
    kubectl("apply", "-f", "-", stdin=_pinned("reuse", taken))
    assert local.get("Service", ns, "reuse")["spec"]["clusterIPs"] == [taken]

    kubectl("apply", "-f", "-", stdin=_pinned("headless", "None"))
    headless = local.get("Service", ns, "headless")["spec"]
    assert (headless["clusterIP"], headless["clusterIPs"]) == ("None", ["None"])
    assert all(a.namespace != ns or a.name != "headless" for a in local.cluster.network.addresses())


def test_a_service_balances_connections_over_two_pods_round_robin(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("web", {"app": "web"}))
    for name in ("web-a", "web-b"):
        local.create(ns, echo_pod(name, {"app": "web"}))
    kubectl("wait", "--for=condition=Ready", "pod/web-a", "pod/web-b", "--timeout=60s")
    served = local.served(ns, "web", endpoints=2)
    ip = local.get("Service", ns, "web")["spec"]["clusterIP"]
    assert served.cluster_ip == ip
    answers = [get_from(f"{served.url}/") for _ in range(6)]
    assert sorted(set(answers)) == ["web-a", "web-b"]
    assert answers[0::2] == [answers[0]] * 3 and answers[1::2] == [answers[1]] * 3

    endpoints = kubectl("get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].ip}")
    assert sorted(endpoints.stdout.split()) == sorted(
        local.pod_ip(ns, n) for n in ("web-a", "web-b")
    )
    described = dict(
        line.split(":", 1) for line in kubectl("describe", "svc", "web").stdout.splitlines()
    )
    assert described["IP"].strip() == ip
    assert sorted(described["Endpoints"].strip().split(",")) == sorted(
        f"{local.pod_ip(ns, n)}:5000" for n in ("web-a", "web-b")
    )


def test_endpoints_follow_readiness_and_the_proxy_follows_them(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("ready", {"app": "ready"}))
    for name in ("ready-a", "ready-b"):
        local.create(ns, echo_pod(name, {"app": "ready"}, readiness=True))
    kubectl("wait", "--for=condition=Ready", "pod/ready-a", "pod/ready-b", "--timeout=60s")
    both = local.wait_ready_endpoints(ns, "ready", 2)
    ip_b = local.pod_ip(ns, "ready-b")
    url = f"{local.served(ns, 'ready', endpoints=2).url}/"

    kubectl("exec", "ready-a", "--", "rm", "/ready/ok")
    assert local.wait_ready_endpoints(ns, "ready", 1) == [ip_b]
    local.served(ns, "ready", endpoints=1)
    assert {get_from(url) for _ in range(4)} == {"ready-b"}
    not_ready = kubectl(
        "get", "endpoints", "ready", "-o", "jsonpath={.subsets[0].notReadyAddresses[*].ip}"
    )
    assert not_ready.stdout == local.pod_ip(ns, "ready-a")

    kubectl("exec", "ready-a", "--", "touch", "/ready/ok")
    assert local.wait_ready_endpoints(ns, "ready", 2) == both
    local.served(ns, "ready", endpoints=2)
    assert {get_from(url) for _ in range(4)} == {"ready-a", "ready-b"}


def test_publish_not_ready_addresses_lists_pods_that_are_not_ready(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("early", {"app": "early"}, publishNotReadyAddresses=True))
    # It serves nothing, so its readiness probe never passes.
    local.create(ns, echo_pod("early-a", {"app": "early"}, readiness=True, listen=False))
    assert local.wait_ready_endpoints(ns, "early", 1) == [local.pod_ip(ns, "early-a")]
    ready = kubectl("get", "pod", "early-a", "-o", "jsonpath={.status.containerStatuses[0].ready}")
    assert ready.stdout == "false"


def test_the_proxy_skips_endpoints_that_refuse(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("mixed", {"app": "mixed"}))
    local.create(ns, echo_pod("mixed-up", {"app": "mixed"}))
    local.create(ns, echo_pod("mixed-down", {"app": "mixed"}, listen=False))
    kubectl("wait", "--for=condition=Ready", "pod/mixed-up", "pod/mixed-down", "--timeout=60s")
    url = f"{local.served(ns, 'mixed', endpoints=2).url}/"
    assert [get_from(url) for _ in range(4)] == ["mixed-up"] * 4


def test_port_80_of_the_cluster_ip_answers_the_guide_exactly_as_written(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, service("workspace-phi-4-mini", {"app": "phi"}))
    local.create(ns, echo_pod("workspace-phi-4-mini-0", {"app": "phi"}))
    kubectl("wait", "--for=condition=Ready", "pod/workspace-phi-4-mini-0", "--timeout=60s")
    served = local.served(ns, "workspace-phi-4-mini", endpoints=1)
    if os.geteuid() != 0:
        pytest.skip("binding port 80 needs root; test_fallback.py covers the other case")
    assert (served.port, served.bound_port, served.exact) == (80, 80, True)
    script = (
        'export CLUSTERIP=$(kubectl get svc workspace-phi-4-mini -o jsonpath="{.spec.clusterIPs[0]}")\n'
        'curl -X POST http://$CLUSTERIP/chat -H "accept: application/json" '
        '-H "Content-Type: application/json" -d \'{"prompt":"YOUR_PROMPT_HERE"}\'\n'
    )
    config = local.cluster.write_kubeconfig(local.tmp / f"guide-{ns}", namespace=ns)
    env = {**os.environ, "KUBECONFIG": str(config), "KUBECACHEDIR": str(kubectl.cache_dir)}
    done = subprocess.run(
        ["bash", "-ec", script], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"Result": "workspace-phi-4-mini-0 answers: YOUR_PROMPT_HERE"}'
