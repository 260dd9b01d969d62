"""The service proxy without Pods: a selector-less Service whose EndpointSlice its owner writes,
ports the OS refuses (below 1024 without root) or another process holds, and stopping, which
frees every port."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest
from structlog.testing import capture_logs

from kaito.cluster import Cluster, start_cluster
from kaito.cluster._json import Obj
from kaito.cluster._network import ClusterNetwork, ServiceAddress, bind_tcp

pytestmark = pytest.mark.anyio


async def refuse_privileged(ip: str, port: int) -> anyio.abc.Listener[anyio.abc.SocketStream]:
    """Bind as a process without CAP_NET_BIND_SERVICE would."""
    if 0 < port < 1024:
        raise PermissionError(errno.EACCES, "Permission denied")
    return await bind_tcp(ip, port)


@pytest.fixture
async def bare() -> AsyncIterator[Cluster]:
    """A cluster with no kubelet and no proxy of its own."""
    async with start_cluster(network=False) as cluster:
        await cluster.create_namespace("p")
        yield cluster


async def echo_server(tg: anyio.abc.TaskGroup, answer: bytes) -> int:
    """A TCP server on 127.0.0.1 that answers ``answer`` and closes; its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(answer)

    tg.start_soon(listener.serve, handle)
    return int(listener.extra(anyio.abc.SocketAttribute.local_port))


def selectorless(name: str, *ports: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "p"},
        "spec": {"ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in ports]},
    }


def endpoint_slice(service: str, port_name: str, port: int) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-manual",
            "namespace": "p",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }


async def served(network: ClusterNetwork, name: str, count: int) -> list[ServiceAddress]:
    """The Service's addresses once ``count`` ports are served."""
    with anyio.fail_after(10):
        while True:
            changed = network.proxy.changed
            found = [a for a in network.addresses() if a.name == name]
            if len(found) == count:
                return found
            await changed.wait()


async def ask(address: str) -> bytes:
    host, port = address.rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(b"hello")
        return await stream.receive()


async def test_refused_privileged_ports_move_to_port_plus_8000_and_say_so_once(
    bare: Cluster,
) -> None:
    async with anyio.create_task_group() as tg:
        backend = await echo_server(tg, b"from the endpoint")
        with capture_logs() as logs:
            async with ClusterNetwork(bare.store, bind=refuse_privileged) as network:
                await bare.client.create(selectorless("web", 80, 9090))
                await bare.client.create(endpoint_slice("web", "p80", backend))
                await bare.client.create(selectorless("other", 80))
                web = await served(network, "web", 2)
                other = await served(network, "other", 1)
                ip = (await bare.client.get("v1", "Service", "web", "p"))["spec"]["clusterIP"]
                assert [(a.port, a.address, a.exact) for a in web] == [
                    (80, f"{ip}:8080", False),
                    (9090, f"{ip}:9090", True),
                ]
                assert web[0].url == f"http://{ip}:8080"
                assert other[0].bound_port == 8080 and other[0].cluster_ip != ip
                with anyio.fail_after(10):
                    while not network.proxy.endpoints("p", "web", 80):
                        await network.proxy.changed.wait()
                assert await ask(web[0].address) == b"from the endpoint"
        tg.cancel_scope.cancel()
    refusals = [e for e in logs if e["event"] == "service_privileged_ports_refused"]
    assert len(refusals) == 1
    assert "CAP_NET_BIND_SERVICE" in refusals[0]["reason"]
    moved = {e["service"]: e["address"] for e in logs if e["event"] == "service_port_moved"}
    assert moved == {
        "p/web": f"{ip}:8080",
        "p/other": f"{other[0].cluster_ip}:8080",
        "default/kubernetes": "127.96.0.1:8443",
    }


async def test_an_address_another_process_holds_is_served_on_a_free_port(bare: Cluster) -> None:
    async with ClusterNetwork(bare.store) as network:
        created = await bare.client.create(selectorless("held", 7000))
        ip = created["spec"]["clusterIP"]
    # Someone else takes the Service's address before the next proxy starts.
    squatter = await bind_tcp(ip, 7000)
    async with squatter:
        with capture_logs() as logs:
            async with ClusterNetwork(bare.store) as network:
                (address,) = await served(network, "held", 1)
    assert address.cluster_ip == ip and address.bound_port not in (0, 7000)
    assert any(e["event"] == "service_address_in_use" for e in logs)


async def test_stopping_the_network_frees_every_port_it_bound(bare: Cluster) -> None:
    async with ClusterNetwork(bare.store) as network:
        for name in ("a", "b"):
            await bare.client.create(selectorless(name, 7001, 7002))
        bound = [*await served(network, "a", 2), *await served(network, "b", 2)]
        kubernetes = await served(network, "kubernetes", 1)
    assert network.addresses() == []
    for address in [*bound, *kubernetes]:
        with pytest.raises(OSError, match="All connection attempts failed"):
            await anyio.connect_tcp(address.cluster_ip, address.bound_port)
        listener = await bind_tcp(address.cluster_ip, address.bound_port)
        await listener.aclose()
