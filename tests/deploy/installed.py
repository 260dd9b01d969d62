"""KAITO installed as a platform team installs it, for tests: a TLS cluster with RBAC enforced
(and ``OwnerReferencesPermissionEnforcement``, as OpenShift and hardened clusters run), an
overlay of deploy/ applied with ``kubectl apply -k`` by the administrator, the Deployment's two
pods scheduled on a CPU node, and the manager run under its ServiceAccount with the token its pod
would mount (a pod-bound TokenRequest token): as a ``kaito manager`` process, or in this process
through ``run_manager``. The API server's audit log records what the manager asks for."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import yaml

from kaito.cluster import (
    AuditEvent,
    BootTimes,
    KarpenterSimulator,
    KarpenterTimes,
    StatusError,
    ThreadedCluster,
    cluster_in_thread,
    karpenter_simulator,
)
from kaito.cluster._kubeconfig import write_kubeconfig
from kaito.engine import KubeClient, load_client
from tests.deploy.conftest import (
    OVERLAYS,
    RELEASE_NAMESPACE,
    SERVICE_ACCOUNT,
    Kubectl,
    container_env,
    environment,
    manager_args,
    prerequisite_crds,
)

WS_API = "kaito.sh/v1beta1"
WEBHOOK_SERVICE = "kaito-workspace-webhook"
KARPENTER_TIMES = KarpenterTimes(
    launch=0.05, register=0.05, boot=BootTimes(0.05, 0.05), launch_retry=0.1,
    launch_timeout=5.0, registration_timeout=5.0, drain=0.02,
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], *, within: float = 30.0, what: str = "condition") -> Any:
    """Re-run ``check`` until it returns something truthy (bounded; integration tests only)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


@attrs.define
class ManagerProcess:
    """``kaito manager`` in its own process, as one replica of the Deployment."""

    pod: str
    process: subprocess.Popen[bytes]
    log: Path
    probe: int
    metrics: int
    webhook: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"manager {self.pod} did not become ready:\n{self.output()}")
            time.sleep(0.05)

    def metrics_text(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit code (SIGKILL and a failure if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"manager {self.pod} ignored SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        """SIGKILL: the replica dies without releasing anything."""
        self.process.kill()
        self.process.wait()


@attrs.define
class InProcessManager:
    """A manager started by :meth:`Installation.run_in_process`; :meth:`stop` it."""

    installation: Installation
    client: KubeClient
    future: Any
    running: Any

    @property
    def ready(self) -> bool:
        return bool(self.running.manager.ready)

    def stop(self) -> None:
        """Cancel it (a hard stop: the graceful one waits for caches that may never sync)."""
        self.future.cancel()
        with contextlib.suppress(concurrent.futures.CancelledError):
            self.future.result(timeout=30)
        self.installation.cluster.call(self.client.close)


@attrs.define
class Installation:
    """A cluster with an overlay of deploy/ applied (see the module docstring)."""

    overlay: str
    cluster: ThreadedCluster
    kubectl: Kubectl
    tmp: Path
    karpenter: KarpenterSimulator | None = None
    processes: list[ManagerProcess] = attrs.field(factory=list)

    # -- the cluster ----------------------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return await func(*args, **kwargs)

        return self.cluster.call(run)

    def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> Any:
        try:
            return self.call(self.cluster.cluster.client.get, api, kind, name, namespace)
        except StatusError as err:
            if err.code == 404:
                return None
            raise

    def list(self, api: str, kind: str, namespace: str | None = None, **kw: Any) -> Any:
        return self.call(self.cluster.cluster.client.list, api, kind, namespace, **kw)

    def conditions(self, name: str, namespace: str = "default") -> dict[str, dict[str, Any]]:
        ws = self.get(WS_API, "Workspace", name, namespace) or {}
        return {c["type"]: c for c in (ws.get("status") or {}).get("conditions") or []}

    def ready(self, name: str, condition: str = "WorkspaceSucceeded") -> bool:
        return self.conditions(name).get(condition, {}).get("status") == "True"

    def add_gpu_node(self, name: str, labels: dict[str, str]) -> None:
        """A bring-your-own GPU node as NVIDIA's feature discovery labels it."""
        self.call(
            self.cluster.cluster.add_node, name, gpus=1, labels=labels,
            taints=[{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            gpu_product="Tesla-V100-PCIE-16GB", gpu_memory_mib=16384,
        )  # fmt: skip

    @contextmanager
    def audit(self, *, everyone: bool = False) -> Iterator[list[AuditEvent]]:
        """Record the manager's requests (by its ServiceAccount) during the block."""
        with self.cluster.cluster.audit.record(
            None if everyone else (lambda e: e.user == SERVICE_ACCOUNT)
        ) as events:
            yield events

    # -- the manager ----------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        """The Deployment's pods, scheduled and running (the simulated kubelet runs nothing)."""

        def running() -> list[dict[str, Any]]:
            pods = self.list("v1", "Pod", RELEASE_NAMESPACE,
                             label_selector="app.kubernetes.io/component=manager")  # fmt: skip
            ok = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            return sorted(ok, key=lambda p: p["metadata"]["name"]) if len(ok) == 2 else []

        return list(eventually(running, what="the manager Deployment's two pods running"))

    def token_kubeconfig(self, pod: dict[str, Any]) -> Path:
        """A kubeconfig with the token the kubelet mounts into ``pod`` (bound to it)."""
        meta = pod["metadata"]
        issued = self.call(
            self.cluster.cluster.service_account_token, RELEASE_NAMESPACE, "kaito-workspace",
            pod=(meta["name"], meta["uid"]), expiration_seconds=3607,
        )  # fmt: skip
        config = self.cluster.cluster.kubeconfig_for_token(issued.token)
        return write_kubeconfig(config, self.tmp / f"{meta['name']}.kubeconfig")

    def register_webhook(self, port: int) -> None:
        """Route the API server's webhook calls for the Service to ``port`` (its Endpoints)."""
        self.cluster.cluster.register_service_endpoint(
            RELEASE_NAMESPACE, WEBHOOK_SERVICE, f"https://127.0.0.1:{port}", port=443
        )

    def start_manager(
        self, pod: dict[str, Any], *, extra: list[str] | None = None, wait: bool = True,
        route_webhook: bool = True, env: dict[str, str] | None = None,
    ) -> ManagerProcess:  # fmt: skip
        """``kaito manager`` with the Deployment's arguments and environment (``env`` on top:
        what a platform's webhooks or secrets would add), its token, and loopback ports
        (replicas share this machine's ports)."""
        name = pod["metadata"]["name"]
        probe, metrics, webhook = free_port(), free_port(), free_port()
        replaced = {
            "--health-probe-bind-address": f"127.0.0.1:{probe}",
            "--metrics-bind-address": f"127.0.0.1:{metrics}",
            "--webhook-port": str(webhook),
        }
        args = [
            f"{flag}={replaced[flag]}" if flag in replaced else arg
            for arg in manager_args(self.overlay)
            for flag in [arg.partition("=")[0]]
        ]
        env = {**environment(), **container_env(self.overlay), **(env or {}), "HOSTNAME": name}
        env.pop("KUBECONFIG", None)
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", "from kaito.cli import main; main()", *args,
                 "--kubeconfig", str(self.token_kubeconfig(pod)), *(extra or [])],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        running = ManagerProcess(name, process, log, probe, metrics, webhook)
        self.processes.append(running)
        if route_webhook:
            self.register_webhook(webhook)
        if wait:
            running.wait_ready()
        return running

    def run_in_process(self, pod: dict[str, Any]) -> InProcessManager:
        """The manager in this process (on the cluster's loop), as the Deployment configures it,
        under the token of ``pod``, with no probe or metrics server and its webhook on loopback.

        Raises:
            ApiError: the manager could not start (its certificate's Secret or webhook
                configurations refused).
        """
        from kaito.cli._manager import manager as command
        from kaito.cli._manager import options_from_params, run_manager

        env = container_env(self.overlay)
        args = [
            *manager_args(self.overlay)[1:],
            f"--node-provisioner={env['NODE_PROVISIONER']}",
            f"--release-namespace={env['RELEASE_NAMESPACE']}",
            "--health-probe-bind-address=0", "--metrics-bind-address=0",
        ]  # fmt: skip
        with command.make_context("kaito manager", args) as ctx:
            options, hooks = options_from_params(ctx.params)
        hooks = attrs.evolve(hooks, host="127.0.0.1", port=0)
        client = self.client_for(pod)
        try:
            future, running = self.cluster.portal.start_task(
                functools.partial(run_manager, options, hooks, client, signals=False)
            )
        except BaseException:
            self.cluster.call(client.close)
            raise
        if running.webhook_port is not None:
            self.register_webhook(running.webhook_port)
        return InProcessManager(self, client, future, running)

    def client_for(self, pod: dict[str, Any]) -> KubeClient:
        """A client on the cluster's loop authenticated as the manager of ``pod``."""
        return self.cluster.call(load_client, str(self.token_kubeconfig(pod)))  # type: ignore[no-any-return]

    # -- workspaces -----------------------------------------------------------------------

    def apply(self, *docs: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs), check=check)


@contextmanager
def installation(
    overlay: str,
    tmp_path: Path,
    *,
    rbac: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> Iterator[Installation]:
    """Install ``overlay`` with ``kubectl apply -k``; or, when ``rbac`` rewrites the rendered
    objects first, apply that rendering as the administrator (server-side apply, no kubectl)."""
    with ExitStack() as stack:
        cluster = stack.enter_context(
            cluster_in_thread(
                tls=True, authorization="RBAC", crds=prerequisite_crds(),
                admission_plugins=["OwnerReferencesPermissionEnforcement"],
            )
        )  # fmt: skip
        karpenter = None
        if overlay == "karpenter":
            karpenter = stack.enter_context(
                cluster.portal.wrap_async_context_manager(
                    karpenter_simulator(cluster.cluster, times=KARPENTER_TIMES)
                )
            )
        kubectl = Kubectl(cluster.write_kubeconfig(tmp_path / "admin.kubeconfig"),
                          tmp_path / "cache")  # fmt: skip
        if rbac is None:
            kubectl("apply", "-k", str(OVERLAYS[overlay]))
        else:
            from tests.deploy.conftest import documents

            docs = rbac(documents(overlay))
            cluster.call(cluster.cluster.client.apply_manifests, docs)  # as the administrator
        installed = Installation(overlay, cluster, kubectl, tmp_path, karpenter)
        installed.call(cluster.cluster.add_node, "system-0", cpu="4", memory="16Gi")
        try:
            yield installed
        finally:
            for process in installed.processes:
                if process.process.poll() is None:
                    process.kill()


def summarize(events: list[AuditEvent]) -> str:
    """The audit events as lines (for assertion messages)."""
    return "\n".join(
        json.dumps([e.verb, e.api_group, e.resource, e.subresource, e.namespace, e.name, e.code])
        for e in events
    )


__all__ = (
    "InProcessManager",
    "Installation",
    "ManagerProcess",
    "eventually",
    "free_port",
    "installation",
    "summarize",
)
