"""A cluster shaped like a real one: an untainted system node sized like this machine, loopback
pod and node IPs, and kubectl seeing what really runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kaito.apimachinery import parse_quantity
from kaito.cluster import LocalKubelet, start_cluster
from kaito.cluster._kubelet import SYSTEM_NODE_NAME, host_capacity
from tests.cluster.kubelet._helpers import Local, StepClock, exists, phase, pod, sh

pytestmark = pytest.mark.anyio


async def test_the_system_node_is_untainted_and_sized_like_this_machine(local: Local) -> None:
    node = await local.cluster.client.get("v1", "Node", SYSTEM_NODE_NAME)
    assert node["spec"].get("taints") in (None, [])
    assert node["metadata"]["labels"]["kubernetes.azure.com/mode"] == "system"
    capacity = node["status"]["capacity"]
    assert int(capacity["cpu"]) == len(os.sched_getaffinity(0))
    assert parse_quantity(capacity["memory"]) == parse_quantity(host_capacity()[1])
    assert "nvidia.com/gpu" not in capacity


async def test_without_the_option_there_is_no_system_node() -> None:
    async with start_cluster() as cluster:
        assert await cluster.client.list("v1", "Node") == []


async def test_pods_get_their_own_loopback_ips_released_when_they_go(local: Local) -> None:
    for name in ("a", "b"):
        await local.create(pod(name, sh("sleep 1000")))
    ips = set()
    for name in ("a", "b"):
        running = await local.wait(name, lambda p: bool((p.get("status") or {}).get("podIP")))
        assert running["status"]["podIPs"] == [{"ip": running["status"]["podIP"]}]
        assert running["status"]["hostIP"].startswith("127.2.")
        ips.add(running["status"]["podIP"])
    assert len(ips) == 2
    assert all(ip.startswith("127.1.") for ip in ips)
    assert local.kubelet.pod_addresses.in_use == 2
    node = await local.cluster.client.get("v1", "Node", SYSTEM_NODE_NAME)
    assert {"type": "InternalIP", "address": running["status"]["hostIP"]} in node["status"][
        "addresses"
    ]
    await local.cluster.client.delete("v1", "Pod", "a", "t")
    await local.kubelet.wait_stopped("t", "a")
    assert local.kubelet.pod_addresses.in_use == 1
    await local.create(pod("done", sh("true"), restartPolicy="Never"))
    await local.wait("done", lambda p: phase(p) == "Succeeded")
    # A finished Pod keeps its status but gives its IP back, as a torn-down sandbox does.
    assert local.kubelet.pod_addresses.in_use == 1


@pytest.mark.kubectl
async def test_kubectl_sees_the_real_state(local: Local, tmp_path: Path) -> None:
    await local.create(pod("ok", sh("sleep 1000")))
    await local.create(pod("crash", sh("exit 1")))
    await local.wait("ok", lambda p: phase(p) == "Running")
    await local.wait(
        "crash",
        lambda p: any(
            (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for s in (p.get("status") or {}).get("containerStatuses") or []
        ),
    )
    kubeconfig = local.cluster.write_kubeconfig(tmp_path / "kubeconfig")
    command = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
    import anyio

    table = await anyio.run_process([*command, "-n", "t", "get", "pods", "-o", "wide"])
    rows = {line.split()[0]: line.split() for line in table.stdout.decode().splitlines()[1:]}
    assert rows["ok"][1:3] == ["1/1", "Running"]
    assert rows["crash"][2] == "CrashLoopBackOff"
    assert rows["ok"][5].startswith("127.1.")
    assert rows["ok"][6] == SYSTEM_NODE_NAME
    nodes = await anyio.run_process([*command, "get", "nodes", "-o", "wide"])
    assert SYSTEM_NODE_NAME in nodes.stdout.decode()


async def test_a_cluster_owns_the_local_kubelet_it_starts(tmp_path: Path) -> None:
    kubelet = LocalKubelet()
    async with start_cluster(kubelet=kubelet, system_node=True) as cluster:
        assert kubelet.started
        root = kubelet.root
        await cluster.create_namespace("t")
        await cluster.client.create(pod("p", sh("true"), restartPolicy="Never"), namespace="t")
        local = Local(cluster, kubelet, StepClock(), tmp_path)
        await local.wait("p", lambda p: phase(p) == "Succeeded")
    assert not kubelet.started
    assert not exists(root)
