"""The pluggable kubelet: a :class:`Kubelet` decides when a bound Pod runs, becomes Ready and
finishes; the node agent starts it for every Pod bound to a Node and cancels it when the Pod goes.

The default :class:`ImmediateKubelet` reports Pods Running and Ready at once, and Pods that do not
restart (``restartPolicy`` ``Never``/``OnFailure``) Succeeded right after. The local kubelet
(``kaito.cluster._kubelet``) runs the containers as processes through the same seam: it reports
whole statuses with :meth:`PodStatusWriter.report`, reads ConfigMaps and Secrets through
:attr:`PodStatusWriter.client` and learns the deletion's grace period from
:attr:`PodStatusWriter.deletion_grace_period`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Hashable, Iterable
from typing import Protocol, cast

import anyio
import structlog
from anyio.abc import TaskGroup

from kaito.cluster._client import LocalClient
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, loads
from kaito.cluster._meta import format_time
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import DeleteOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._sim._common import NODES, PODS, pod_terminal, set_condition
from kaito.cluster._store import EventType, GroupResource, StorageEvent

__all__ = ("KUBELET_CONDITIONS", "ImmediateKubelet", "Kubelet", "NodeAgent", "PodStatusWriter")

log = structlog.get_logger(__name__)

#: The pod conditions a kubelet owns, in the order it writes them.
KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


class PodStatusWriter:
    """What a :class:`Kubelet` reports a Pod's state through (each call patches ``pods/status``)."""

    def __init__(self, rest: RestApi, pod: Obj, pod_ip: str, host_ip: str) -> None:
        self._rest = rest
        self.pod = pod
        self._pod_ip = pod_ip
        self._host_ip = host_ip
        self._ctx = RequestContext(
            user=f"system:node:{self.node_name}", groups=("system:nodes", "system:authenticated")
        )
        self._started = format_time(rest.clock())
        self._client = LocalClient(rest, user=self._ctx.user)
        self._deletion_grace: int | None = None

    @property
    def node_name(self) -> str:
        """The Node the Pod is bound to."""
        return str((self.pod.get("spec") or {}).get("nodeName") or "")

    @property
    def pod_ip(self) -> str:
        """The IP reported in ``status.podIP``."""
        return self._pod_ip

    @property
    def host_ip(self) -> str:
        """The IP reported in ``status.hostIP``."""
        return self._host_ip

    def use_addresses(self, pod_ip: str, host_ip: str) -> None:
        """Report these addresses from now on (a kubelet with a network of its own assigns them)."""
        self._pod_ip = pod_ip
        self._host_ip = host_ip

    @property
    def client(self) -> LocalClient:
        """API access as the node (``system:node:NAME``): ConfigMaps, Secrets, Events, Nodes."""
        return self._client

    @property
    def deletion_grace_period(self) -> int | None:
        """Seconds the Pod's deletion grants its containers to stop; ``None`` until it is deleted.

        The node agent sets it before it cancels :meth:`Kubelet.run_pod`: the deletion's
        ``deletionGracePeriodSeconds``, else the Pod's ``terminationGracePeriodSeconds``.
        """
        return self._deletion_grace

    def mark_deleted(self, grace_period: int) -> None:
        """Record that the Pod was deleted with ``grace_period`` seconds to stop (node agent)."""
        self._deletion_grace = max(0, grace_period)

    @property
    def namespace(self) -> str:
        """The Pod's namespace."""
        return str(self.pod["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        """The Pod's name."""
        return str(self.pod["metadata"]["name"])

    def _containers(self, state: Obj, ready: bool, restarts: int = 0) -> list[Obj]:
        statuses = []
        for container in (self.pod.get("spec") or {}).get("containers") or []:
            image = container.get("image", "")
            statuses.append(
                {
                    "name": container.get("name", ""),
                    "state": state,
                    "lastState": {},
                    "ready": ready,
                    "restartCount": restarts,
                    "image": image,
                    "imageID": f"{image}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{self.name}-{container.get('name', '')}",
                    "started": "running" in state,
                }
            )
        return statuses

    async def _patch_status(self, rt: ResourceType, status: Obj) -> None:
        """Merge-patch the Pod's status; a Pod deleted meanwhile is no error."""
        try:
            await self._rest.patch(
                rt,
                self.namespace,
                self.name,
                "application/merge-patch+json",
                {"status": status},
                options=WriteOptions(),
                ctx=self._ctx,
                subresource="status",
            )
        except StatusError as error:
            if error.code != 404:
                raise

    async def _write(
        self, phase: str, *, ready: bool, state: Obj, reason: str = "", message: str = ""
    ) -> None:
        rt = self._rest.catalog.lookup("", "v1", "pods")
        assert rt is not None
        try:
            current = self._rest.decode(rt, await self._rest.get(rt, self.namespace, self.name))
        except StatusError as error:
            if error.code == 404:
                return
            raise
        now = format_time(self._rest.clock())
        conditions = list((current.get("status") or {}).get("conditions") or [])
        initialized = "True"
        containers_ready = "True" if ready else "False"
        conditions = set_condition(conditions, "PodReadyToStartContainers", "True", now=now)
        conditions = set_condition(conditions, "Initialized", initialized, now=now)
        conditions = set_condition(
            conditions,
            "ContainersReady",
            containers_ready,
            now=now,
            reason=""
            if ready
            else ("PodCompleted" if phase == "Succeeded" else "ContainersNotReady"),
        )
        conditions = set_condition(
            conditions,
            "Ready",
            containers_ready,
            now=now,
            reason=""
            if ready
            else ("PodCompleted" if phase == "Succeeded" else "ContainersNotReady"),
        )
        conditions = set_condition(conditions, "PodScheduled", "True", now=now)
        status: Obj = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self._host_ip,
            "hostIPs": [{"ip": self._host_ip}],
            "podIP": self._pod_ip,
            "podIPs": [{"ip": self._pod_ip}],
            "startTime": self._started,
            "containerStatuses": self._containers(state, ready),
        }
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        await self._patch_status(rt, status)

    async def running(self, *, ready: bool = True) -> None:
        """Containers are running; ``ready`` sets the Ready condition."""
        await self._write(
            "Running",
            ready=ready,
            state={"running": {"startedAt": format_time(self._rest.clock())}},
        )

    async def waiting(self, reason: str, message: str = "") -> None:
        """Containers wait (``ImagePullBackOff``, ``CrashLoopBackOff``); the Pod stays Pending."""
        await self._write(
            "Pending", ready=False, state={"waiting": {"reason": reason, "message": message}}
        )

    async def succeeded(self, *, exit_code: int = 0) -> None:
        """Every container exited successfully."""
        now = format_time(self._rest.clock())
        await self._write(
            "Succeeded",
            ready=False,
            state={
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Completed",
                    "startedAt": self._started,
                    "finishedAt": now,
                }
            },
        )

    async def failed(self, *, exit_code: int = 1, reason: str = "Error", message: str = "") -> None:
        """A container failed and will not restart."""
        now = format_time(self._rest.clock())
        await self._write(
            "Failed",
            ready=False,
            reason="" if reason == "Error" else reason,
            message=message,
            state={
                "terminated": {
                    "exitCode": exit_code,
                    "reason": reason,
                    "message": message,
                    "startedAt": self._started,
                    "finishedAt": now,
                }
            },
        )

    async def report(self, status: Obj | Callable[[Obj], Obj]) -> None:
        """Write a whole status as a kubelet computes it.

        ``status`` (or what ``status(current_pod)`` returns, for a status that depends on the
        Pod as stored, such as readiness gates) carries ``phase``, the kubelet's conditions
        (:data:`KUBELET_CONDITIONS`, without transition times), ``containerStatuses``,
        ``initContainerStatuses`` and optionally ``reason``, ``message`` and ``qosClass``. This
        adds the IPs and ``startTime``, keeps the conditions other components own, and keeps each
        condition's ``lastTransitionTime`` while its status holds. A Pod that is gone is not an
        error.
        """
        rt = self._rest.catalog.lookup("", "v1", "pods")
        assert rt is not None
        try:
            current = self._rest.decode(rt, await self._rest.get(rt, self.namespace, self.name))
        except StatusError as error:
            if error.code == 404:
                return
            raise
        if current["metadata"].get("uid") != self.pod["metadata"].get("uid"):
            return
        if callable(status):
            status = status(current)
        now = format_time(self._rest.clock())
        previous = list((current.get("status") or {}).get("conditions") or [])
        conditions = [c for c in previous if c.get("type") not in KUBELET_CONDITIONS]
        for condition in status.get("conditions") or []:
            kind = condition["type"]
            kept = set_condition(
                [c for c in previous if c.get("type") == kind],
                kind,
                condition["status"],
                reason=condition.get("reason", ""),
                message=condition.get("message", ""),
                now=now,
                extra={"lastProbeTime": None},
            )
            conditions.extend(kept)
        body: Obj = {
            **{k: v for k, v in status.items() if k != "conditions"},
            "conditions": conditions,
            "hostIP": self._host_ip,
            "hostIPs": [{"ip": self._host_ip}],
            "startTime": self._started,
        }
        if self._pod_ip:
            body["podIP"] = self._pod_ip
            body["podIPs"] = [{"ip": self._pod_ip}]
        body.setdefault("reason", None)
        body.setdefault("message", None)
        await self._patch_status(rt, body)


class Kubelet(Protocol):
    """Protocol: runs Pods bound to simulated Nodes."""

    async def run_pod(self, pod: Obj, status: PodStatusWriter) -> None:
        """Drive one Pod's lifecycle through ``status``; cancelled when the Pod is deleted.

        Return once the Pod is finished; for a long-running Pod, wait (for example with
        ``anyio.sleep_forever()``) until cancelled.
        """
        ...


class ImmediateKubelet:
    """Pods are Running and Ready at once; non-restarting Pods then succeed."""

    async def run_pod(self, pod: Obj, status: PodStatusWriter) -> None:
        await status.running(ready=True)
        if (pod.get("spec") or {}).get("restartPolicy", "Always") in ("Never", "OnFailure"):
            await status.succeeded()
            return
        await anyio.sleep_forever()


class NodeAgent:
    """Starts the kubelet for each Pod bound to a Node, and cancels it when the Pod goes away."""

    name = "kubelet"

    def __init__(self, rest: RestApi, kubelet: Kubelet, tasks: TaskGroup) -> None:
        self._rest = rest
        self._kubelet = kubelet
        self._tasks = tasks
        self._running: dict[tuple[str, str], tuple[str, anyio.CancelScope, PodStatusWriter]] = {}
        self._next_ip = 2
        self._pod_network = ipaddress.ip_network("10.244.0.0/16")

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr != PODS:
            return ()
        key = (event.obj.namespace, event.obj.name)
        if event.type is EventType.DELETED:
            running = self._running.pop(key, None)
            if running is not None:  # force-deleted: stop at once
                running[2].mark_deleted(_grace_period(loads(event.obj.data)))
                running[1].cancel()
            return ()
        if event.obj.deleting:
            running = self._running.get(key)
            if running is not None and not running[1].cancel_called:
                # Terminating: stop the containers within the grace period, then remove the Pod.
                running[2].mark_deleted(_grace_period(loads(event.obj.data)))
                running[1].cancel()
                return ()
            return (key,) if running is None and event.obj.fields[0] else ()
        if key in self._running or event.obj.fields[0] == "":
            return ()
        return (key,)

    async def initial_keys(self) -> Iterable[Hashable]:
        """Pods bound to nodes when the agent starts (a restarted cluster's running Pods)."""
        snapshot = await self._rest.store.list(PODS, None)
        return [(o.namespace, o.name) for o in snapshot.items if o.fields and o.fields[0]]

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = cast("tuple[str, str]", key)
        if (namespace, name) in self._running:
            return None
        stored = await self._rest.store.get(PODS, namespace, name)
        if stored is None:
            return None
        if stored.deleting:
            await self._finish_deletion(namespace, name, stored.uid)
            return None
        pod = loads(stored.data)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or pod_terminal(pod):
            return None
        node = await self._rest.store.get(NODES, "", node_name)
        host_ip = "10.0.0.1"
        if node is not None:
            for address in (loads(node.data).get("status") or {}).get("addresses") or []:
                if address.get("type") == "InternalIP":
                    host_ip = address.get("address", host_ip)
        pod_ip = (pod.get("status") or {}).get("podIP") or str(
            self._pod_network.network_address + self._next_ip
        )
        self._next_ip += 1
        scope = anyio.CancelScope()
        writer = PodStatusWriter(self._rest, pod, pod_ip, host_ip)
        self._running[(namespace, name)] = (stored.uid, scope, writer)
        self._tasks.start_soon(self._run, (namespace, name), scope, pod, writer)
        return None

    async def _run(
        self, key: tuple[str, str], scope: anyio.CancelScope, pod: Obj, writer: PodStatusWriter
    ) -> None:
        with scope:
            try:
                await self._kubelet.run_pod(pod, writer)
            except Exception:
                log.exception("kubelet_run_pod_failed", pod=f"{key[0]}/{key[1]}")
        current = self._running.get(key)
        if (
            current is not None
            and current[1] is scope
            and (pod_terminal(pod) or scope.cancel_called)
        ):
            self._running.pop(key, None)
        if writer.deletion_grace_period is not None:
            with anyio.CancelScope(shield=True):
                await self._finish_deletion(key[0], key[1], str(pod["metadata"].get("uid", "")))

    async def _finish_deletion(self, namespace: str, name: str, uid: str) -> None:
        """The node's last word on a Terminating Pod: its containers are stopped, so delete it
        with grace 0 (only that Pod: the uid is a precondition)."""
        rt = self._rest.catalog.lookup("", "v1", "pods")
        assert rt is not None
        ctx = RequestContext(user="system:node:kubelet", groups=("system:nodes",))
        try:
            await self._rest.delete(
                rt,
                namespace,
                name,
                DeleteOptions(grace_period_seconds=0, precondition_uid=uid or None),
                ctx,
            )
        except StatusError as error:
            if error.code not in (404, 409):
                raise
        log.debug("kubelet_pod_deleted", pod=f"{namespace}/{name}")


def _grace_period(pod: Obj) -> int:
    """The seconds a deleted Pod's containers get to stop, as the kubelet reads them."""
    meta = pod.get("metadata") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    try:
        return max(0, int(grace))
    except (TypeError, ValueError):
        return 30


def node_object(
    name: str,
    *,
    gpus: int,
    cpu: str,
    memory: str,
    labels: dict[str, str],
    taints: list[Obj],
    ready: bool,
    gpu_product: str | None,
    gpu_memory_mib: int | None,
    now: dt.datetime,
) -> Obj:
    """A Node as a kubelet with the NVIDIA device plugin registers it."""
    capacity: Obj = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "1Ti"}
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        **labels,
    }
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        node_labels.setdefault("nvidia.com/gpu.count", str(gpus))
        if gpu_product:
            node_labels.setdefault("nvidia.com/gpu.product", gpu_product)
        if gpu_memory_mib:
            node_labels.setdefault("nvidia.com/gpu.memory", str(gpu_memory_mib))
    stamp = format_time(now)
    index = sum(name.encode()) % 250 + 2
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "kubelet is posting ready status"
                    if ready
                    else "kubelet is not ready",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{index}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0",
                "osImage": "Ubuntu 22.04.5 LTS",
                "kernelVersion": "5.15.0",
                "containerRuntimeVersion": "containerd://1.7.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }
