"""Helpers for networking and streaming tests: a cluster whose Pods run as local processes (in a
background thread, so kubectl can be called synchronously), and Pod and Service builders."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import attrs

from kaito.cluster import Cluster, LocalKubelet, StatusError, start_cluster
from kaito.cluster._json import Obj
from kaito.cluster._network import ServiceAddress
from tests.cluster._helpers import eventually
from tests.cluster.conftest import Kubectl

#: A small HTTP server for Pods: ``GET /`` answers the Pod's name, ``GET /healthz`` 200 while the
#: file named by $READY exists (when $READY is set), ``POST /chat`` a JSON answer.
ECHO_SERVER = r"""
import http.server, json, os, sys
name, port = os.environ["POD_NAME"], int(sys.argv[1])
ready = os.environ.get("READY")
if ready:
    open(ready, "w").close()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, code, body, kind="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/healthz":
            ok = not ready or os.path.exists(ready)
            return self.answer(200 if ok else 503, b"ok" if ok else b"not ready")
        self.answer(200, name.encode())
    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path != "/chat":
            return self.answer(404, b"not found")
        text = json.dumps({"Result": f"{name} answers: {data.get('prompt', '')}"}).encode()
        self.answer(200, text, "application/json")
    def log_message(self, fmt, *args):
        print("request", fmt % args, flush=True)
print("listening", os.environ["POD_IP"], port, flush=True)
http.server.ThreadingHTTPServer((os.environ["POD_IP"], port), Handler).serve_forever()
"""


def echo_pod(
    name: str,
    labels: dict[str, str],
    *,
    port: int = 5000,
    readiness: bool = False,
    listen: bool = True,
    **spec: Any,
) -> Obj:
    """A Pod serving :data:`ECHO_SERVER` on its own IP (``listen=False``: a Pod that runs but
    serves nothing, so connections to it are refused)."""
    env: list[Obj] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    container: Obj = {
        "name": "server",
        "image": "kaito-runtime:test",
        "command": ["python", "-c", ECHO_SERVER, str(port)]
        if listen
        else ["sh", "-c", "echo idle; exec sleep 3600"],
        "ports": [{"name": "http", "containerPort": port}],
        "env": env,
    }
    volumes: list[Obj] = []
    if readiness:
        env.append({"name": "READY", "value": "/ready/ok"})
        container["volumeMounts"] = [{"name": "ready", "mountPath": "/ready"}]
        volumes.append({"name": "ready", "emptyDir": {}})
        container["readinessProbe"] = {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [container],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 1,
            **spec,
        },
    }


def service(name: str, selector: dict[str, str], *, port: int = 80, **spec: Any) -> Obj:
    """A Service from ``port`` to the Pods' ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
            **spec,
        },
    }


@attrs.frozen
class LocalCluster:
    """A cluster with the local kubelet and networking, run by a portal (another thread)."""

    cluster: Cluster
    kubelet: LocalKubelet
    portal: anyio.from_thread.BlockingPortal
    tmp: Path

    def call(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await func(*args)`` on the cluster's event loop."""
        return self.portal.call(func, *args)

    def namespace(self) -> str:
        """A fresh namespace."""
        name = f"n-{secrets.token_hex(3)}"
        self.call(self.cluster.create_namespace, name)
        return name

    def kubectl(self, namespace: str) -> Kubectl:
        """kubectl for ``namespace``."""
        config = self.cluster.write_kubeconfig(self.tmp / "kubeconfig")
        return Kubectl(config, self.tmp / "kube-cache", namespace)

    def create(self, namespace: str, obj: Obj) -> Obj:
        """Create ``obj`` in ``namespace``."""
        created: Obj = self.portal.call(
            functools.partial(self.cluster.client.create, obj, namespace=namespace)
        )
        return created

    def get(self, kind: str, namespace: str, name: str, api_version: str = "v1") -> Obj:
        """Read an object."""
        found: Obj = self.call(self.cluster.client.get, api_version, kind, name, namespace)
        return found

    def until(self, check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
        """Wait until ``check()`` holds (re-checked after every store commit)."""
        self.call(_eventually, self.cluster, check, within)

    def ready_endpoints(self, namespace: str, service_name: str) -> list[str]:
        """The ready endpoint addresses of a Service's EndpointSlices."""
        slices: list[Obj] = self.call(_list_slices, self.cluster, namespace, service_name)
        return sorted(
            address
            for item in slices
            for endpoint in item.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready")
            for address in endpoint["addresses"]
        )

    def wait_ready_endpoints(
        self, namespace: str, service_name: str, count: int, *, within: float = 30.0
    ) -> list[str]:
        """Wait until the Service has exactly ``count`` ready endpoints; their addresses."""

        async def enough() -> bool:
            slices = await _list_slices(self.cluster, namespace, service_name)
            ready = [
                e
                for item in slices
                for e in item.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready")
            ]
            return len(ready) == count

        self.until(enough, within=within)
        return self.ready_endpoints(namespace, service_name)

    def served(
        self, namespace: str, name: str, *, endpoints: int, port: int = 80, within: float = 30.0
    ) -> ServiceAddress:
        """Wait until the proxy serves the Service's ``port`` with ``endpoints`` endpoints."""
        found: ServiceAddress = self.portal.call(
            functools.partial(
                _served, self.cluster, namespace, name, port=port, count=endpoints, within=within
            )
        )
        return found

    def pod_ip(self, namespace: str, name: str) -> str:
        """The Pod's IP once it has one."""

        async def has_ip() -> bool:
            try:
                pod = await self.cluster.client.get("v1", "Pod", name, namespace)
            except StatusError:
                return False
            return bool((pod.get("status") or {}).get("podIP"))

        self.until(has_ip)
        return str(self.get("Pod", namespace, name)["status"]["podIP"])


async def _eventually(
    cluster: Cluster, check: Callable[[], Awaitable[bool]], within: float
) -> None:
    await eventually(cluster, check, within=within)


async def _served(
    cluster: Cluster, namespace: str, name: str, *, port: int, count: int, within: float
) -> ServiceAddress:
    assert cluster.network is not None
    proxy = cluster.network.proxy
    with anyio.fail_after(within):
        while True:
            changed = proxy.changed
            for address in proxy.addresses():
                if (address.namespace, address.name, address.port) == (
                    namespace,
                    name,
                    port,
                ) and len(proxy.endpoints(namespace, name, port)) == count:
                    return address
            await changed.wait()


async def _list_slices(cluster: Cluster, namespace: str, service_name: str) -> list[Obj]:
    found: list[Obj] = await cluster.client.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        namespace,
        label_selector=f"kubernetes.io/service-name={service_name}",
    )
    return found


@contextmanager
def local_cluster(tmp: Path, **settings: Any) -> Iterator[LocalCluster]:
    """Run a cluster with a :class:`LocalKubelet` (and the system node) in a background thread."""
    kubelet = LocalKubelet(root=tmp / "kubelet", shutdown_grace=2.0)
    with (
        anyio.from_thread.start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(kubelet),
        portal.wrap_async_context_manager(
            start_cluster(kubelet=kubelet, system_node=True, **settings)
        ) as cluster,
    ):
        yield LocalCluster(cluster, kubelet, portal, tmp)
