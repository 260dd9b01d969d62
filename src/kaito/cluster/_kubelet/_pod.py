"""One Pod on the local kubelet, from binding to deletion: its IP, volumes and ``/etc/hosts``, the
init containers in order, then the containers, restarts per ``restartPolicy``, the status it
reports, and a graceful stop of everything when the Pod is deleted or the cluster stops."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import structlog

from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj
from kaito.cluster._kubelet._container import ContainerRuntime, go_duration
from kaito.cluster._kubelet._events import PodEvents
from kaito.cluster._kubelet._fields import PodFacts
from kaito.cluster._kubelet._network import AddressPoolExhausted
from kaito.cluster._kubelet._status import pod_conditions, pod_phase
from kaito.cluster._kubelet._volumes import MountedVolume, VolumeError, VolumeManager
from kaito.cluster._sim import PodStatusWriter

if TYPE_CHECKING:
    from kaito.cluster._kubelet._kubelet import LocalKubelet

__all__ = ("PodRuntime",)

log = structlog.get_logger(__name__)


class PodRuntime:
    """Runs one Pod (identified by its uid) and reports its status."""

    def __init__(self, kubelet: LocalKubelet, pod: Obj, writer: PodStatusWriter) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.writer = writer
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.uid = str(meta.get("uid", ""))
        self.namespace = str(meta.get("namespace", ""))
        self.name = str(meta.get("name", ""))
        self.display = f"{self.namespace}/{self.name}"
        self.hostname = str(spec.get("hostname") or self.name)[:63]
        self.pod_dir = kubelet.root / "pods" / self.uid
        self.events = PodEvents(writer.client, pod, writer.node_name, kubelet.wall)
        self.init_containers = [
            ContainerRuntime(self, c, init=True) for c in spec.get("initContainers") or []
        ]
        self.containers = [
            ContainerRuntime(self, c, init=False) for c in spec.get("containers") or []
        ]
        self.volumes: dict[str, MountedVolume] = {}
        self.facts = PodFacts(pod, "", "")
        self.sandbox_ready = False
        self.phase = "Pending"
        self._volume_manager: VolumeManager | None = None
        self._dirty = anyio.Event()
        self._reported = anyio.Event()
        self._cache: dict[tuple[str, str, str], Obj | None] = {}

    # -- what containers need -------------------------------------------------------------

    @property
    def pod_ip(self) -> str:
        return self.writer.pod_ip

    def grace_period(self) -> float:
        """The Pod's ``terminationGracePeriodSeconds``."""
        value = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            return 30.0

    def stop_grace(self) -> float:
        """Seconds the containers get to stop now: the deletion's grace period, or (the kubelet
        is stopping) the Pod's, capped by the kubelet's ``shutdown_grace``."""
        grace = self.writer.deletion_grace_period
        if grace is not None:
            return float(grace)
        return min(self.grace_period(), self.kubelet.shutdown_grace)

    async def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A ConfigMap or Secret of the Pod's namespace (``None`` when missing)."""
        key = (kind, namespace, name)
        if key in self._cache:
            return self._cache[key]
        try:
            found: Obj | None = await self.writer.client.get("v1", kind, name, namespace)
        except StatusError as error:
            if error.code != 404:
                raise
            found = None
        self._cache[key] = found
        return found

    def forget_lookups(self) -> None:
        """Read ConfigMaps and Secrets afresh from now on (each configuration attempt)."""
        self._cache.clear()

    def changed(self) -> None:
        """A container's state changed: report the status soon."""
        self._dirty.set()

    def kubelet_log_exit(self, container: ContainerRuntime, code: int) -> None:
        log.info(
            "kubelet_container_exited",
            pod=self.display,
            container=container.name,
            exit_code=code,
            restarts=container.state.restart_count,
        )

    def container(self, name: str) -> ContainerRuntime | None:
        """The container (or init container) named ``name``."""
        for runtime in self.containers + self.init_containers:
            if runtime.name == name:
                return runtime
        return None

    # -- the Pod's life -------------------------------------------------------------------

    async def run(self) -> None:
        """Run the Pod until cancelled (its deletion); stops everything on the way out."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._report_loop)
                self.changed()
                await self._run_pod()
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await self.stop()

    async def _run_pod(self) -> None:
        spec = self.pod.get("spec") or {}
        for runtime in self.init_containers:
            runtime.state.state = {"waiting": {"reason": "PodInitializing"}}
        for runtime in self.containers:
            reason = "PodInitializing" if self.init_containers else "ContainerCreating"
            runtime.state.state = {"waiting": {"reason": reason}}
        await self._setup()
        if not await self._initialize(spec.get("restartPolicy") or "Always"):
            self.phase = "Failed"
            await self._finish()
            return
        async with anyio.create_task_group() as tg:
            for runtime in self.containers:
                tg.start_soon(self._keep_running, runtime, spec.get("restartPolicy") or "Always")
        await self._finish()

    async def _setup(self) -> None:
        """The sandbox: addresses, ``/etc/hosts`` and volumes (retried until they succeed)."""
        kubelet = self.kubelet
        spec = self.pod.get("spec") or {}
        host_ip = await kubelet.node_address(self.writer)
        if spec.get("hostNetwork"):
            pod_ip = host_ip
        else:
            try:
                pod_ip = kubelet.pod_addresses.allocate(self.uid)
            except AddressPoolExhausted as error:
                await self.events.record("Warning", "FailedCreatePodSandBox", str(error))
                raise
        self.writer.use_addresses(pod_ip, host_ip)
        self.facts = PodFacts(
            self.pod, pod_ip, host_ip, await kubelet.node_allocatable(self.writer)
        )
        await anyio.to_thread.run_sync(self.write_hosts, self.hosts_text(pod_ip))
        self._volume_manager = VolumeManager(
            pod_dir=self.pod_dir,
            memory_dir=kubelet.memory_root / self.uid if kubelet.memory_root else None,
            claims_dir=kubelet.root / "claims",
            lookup=self.lookup,
            facts=self.facts,
            token_source=kubelet.token_source,
        )
        key = ("volumes", self.uid)
        while True:
            self.forget_lookups()
            try:
                self.volumes = await self._volume_manager.setup(self.pod)
                break
            except VolumeError as error:
                await self.events.record("Warning", "FailedMount", str(error))
                now = kubelet.clock.now()
                await kubelet.clock.sleep(kubelet.backoff.next(key, now))
        kubelet.backoff.forget(key)
        for name in self._volume_manager.memory_backed:
            log.warning(
                "kubelet_memory_volume_on_disk",
                pod=self.display,
                volume=name,
                reason="no tmpfs at /dev/shm; the volume is an ordinary folder",
            )
        self.sandbox_ready = True
        self.changed()

    def hosts_text(self, pod_ip: str) -> str:
        """The Pod's ``/etc/hosts``: its own name, ``hostAliases``, then the cluster's names
        (Services) when networking is plugged in."""
        spec = self.pod.get("spec") or {}
        lines = [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
        ]
        fqdn = self.hostname
        if spec.get("subdomain"):
            domain = f"{spec['subdomain']}.{self.namespace}.svc.cluster.local"
            fqdn = f"{self.hostname}.{domain}\t{self.hostname}"
        lines.append(f"{pod_ip}\t{fqdn}")
        for alias in spec.get("hostAliases") or []:
            lines.append(f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []))
        hosts = self.kubelet.cluster_hosts
        if hosts is not None:
            lines.append("# Cluster names (Services), kept up to date by the local kubelet.")
            lines.extend(f"{ip}\t" + " ".join(names) for ip, names in hosts(self.namespace))
        return "\n".join(lines) + "\n"

    def write_hosts(self, text: str, *, create: bool = True) -> None:
        """Write ``text`` as the Pod's ``/etc/hosts`` (with ``create=False`` only over an
        existing one: the Pod may be going away). Blocking."""
        path = self.pod_dir / "etc-hosts"
        if create:
            self.pod_dir.mkdir(parents=True, exist_ok=True)
        try:
            if path.read_text() == text:
                return
        except FileNotFoundError:
            if not create:
                return
        # In place (same inode): the file is bind-mounted into the Pod's mount namespace.
        with path.open("w") as handle:
            handle.write(text)

    async def _initialize(self, policy: str) -> bool:
        """Run the init containers in order; ``False`` when one failed for good."""
        for runtime in self.init_containers:
            while True:
                code = await runtime.run_once()
                if code == 0:
                    break
                if policy == "Never":
                    return False
                await self._back_off(runtime)
        return True

    async def _keep_running(self, runtime: ContainerRuntime, policy: str) -> None:
        while True:
            code = await runtime.run_once()
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                return
            await self._back_off(runtime)

    async def _back_off(self, runtime: ContainerRuntime) -> None:
        """Wait out the crash-loop back-off before the next run of ``runtime``."""
        kubelet = self.kubelet
        key = ("crash", self.uid, runtime.name)
        now = kubelet.clock.now()
        finished = runtime.finished_at_monotonic
        remaining = kubelet.backoff.remaining(key, finished, now)
        if remaining > 0:
            delay = kubelet.backoff.delay(key)
            message = (
                f"back-off {go_duration(delay)} restarting failed container={runtime.name} "
                f"pod={self.name}_{self.namespace}({self.uid})"
            )
            terminated = runtime.state.terminated
            if terminated is not None:
                runtime.state.last_state = {"terminated": terminated}
            runtime.state.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            runtime.state.ready = False
            self.changed()
            await self.events.record(
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {runtime.name} in pod "
                f"{self.name}_{self.namespace}({self.uid})",
                field_path=runtime.field_path,
            )
            await kubelet.clock.sleep(remaining)
        kubelet.backoff.next(key, kubelet.clock.now())

    async def _finish(self) -> None:
        """Every container is done for good: the terminal phase, then release the IP."""
        spec = self.pod.get("spec") or {}
        self.phase = pod_phase(
            spec.get("restartPolicy") or "Always",
            [c.state for c in self.init_containers],
            [c.state for c in self.containers],
        )
        if not spec.get("hostNetwork"):
            self.kubelet.pod_addresses.release(self.uid)
        await self.flush()
        log.info("kubelet_pod_finished", pod=self.display, phase=self.phase)

    # -- status ---------------------------------------------------------------------------

    def status(self, current: Obj | None = None) -> Obj:
        """The status the kubelet reports now (``current``: the Pod as stored, whose conditions
        the readiness gates are checked against)."""
        spec = self.pod.get("spec") or {}
        init = [c.state for c in self.init_containers]
        main = [c.state for c in self.containers]
        phase = pod_phase(spec.get("restartPolicy") or "Always", init, main)
        if self.phase in ("Succeeded", "Failed"):
            phase = self.phase
        elif phase in ("Succeeded", "Failed"):
            # A terminal phase is reported once the Pod's sandbox is torn down (``_finish``).
            phase = "Running" if any(c.terminated for c in main) else "Pending"
        body: Obj = {
            "phase": phase,
            "conditions": pod_conditions(
                phase=phase,
                sandbox_ready=self.sandbox_ready,
                init=init,
                main=main,
                readiness_gates=[
                    g.get("conditionType", "") for g in spec.get("readinessGates") or []
                ],
                conditions=((current or self.pod).get("status") or {}).get("conditions") or [],
            ),
            "containerStatuses": [c.to_status() for c in main],
        }
        if init:
            body["initContainerStatuses"] = [c.to_status() for c in init]
        return body

    async def _report_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            reported = self._reported
            self._reported = anyio.Event()
            try:
                await self.writer.report(self.status)
            except StatusError as error:
                log.warning("kubelet_status_not_written", pod=self.display, error=error.message)
                self._dirty.set()
                await anyio.sleep(0.5)
            reported.set()

    async def flush(self) -> None:
        """Wait until the current status has been written."""
        self.changed()
        await self._reported.wait()

    # -- stopping -------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every container (grace period of the deletion, preStop hooks), release the IP
        and the Pod's folders."""
        grace = self.writer.deletion_grace_period
        seconds = (
            float(grace)
            if grace is not None
            else min(self.grace_period(), self.kubelet.shutdown_grace)
        )
        async with anyio.create_task_group() as tg:
            for runtime in self.containers + self.init_containers:
                tg.start_soon(runtime.stop, seconds)
        for runtime in self.containers + self.init_containers:
            for run in runtime.runs:
                run.log.close()
        if not (self.pod.get("spec") or {}).get("hostNetwork"):
            self.kubelet.pod_addresses.release(self.uid)
        for runtime in self.containers + self.init_containers:
            for key in (("crash", self.uid, runtime.name), ("config", self.uid, runtime.name)):
                self.kubelet.backoff.forget(key)
        if self._volume_manager is not None:
            await anyio.to_thread.run_sync(self._volume_manager.teardown)
        with contextlib.suppress(OSError):
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(self.pod_dir, ignore_errors=True))
        log.info("kubelet_pod_stopped", pod=self.display, grace_period=seconds)

    @property
    def log_dir(self) -> Path:
        return self.pod_dir / "logs"
