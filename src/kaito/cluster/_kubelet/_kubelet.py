"""The local kubelet: a :class:`~kaito.cluster.Kubelet` that runs every Pod bound to a Node as
processes of this machine and reports the truth about them; plus the node-side APIs the API
server's streaming endpoints use (``read_logs``, ``exec``, ``attach``)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

import anyio
import anyio.to_thread
import attrs
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream
from prometheus_client import CollectorRegistry

from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj
from kaito.cluster._kubelet._backoff import BackOff
from kaito.cluster._kubelet._clock import KubeletClock, MonotonicTime
from kaito.cluster._kubelet._container import ContainerRuntime
from kaito.cluster._kubelet._images import ImageError, ImageProfile, ImageTable
from kaito.cluster._kubelet._logs import LogOptions
from kaito.cluster._kubelet._metrics import KubeletMetrics
from kaito.cluster._kubelet._network import DEFAULT_NODE_CIDR, DEFAULT_POD_CIDR, AddressPool
from kaito.cluster._kubelet._pod import PodRuntime
from kaito.cluster._kubelet._probes import Prober
from kaito.cluster._kubelet._process import ContainerProcess, group_members
from kaito.cluster._kubelet._sandbox import Sandbox, detect_sandbox
from kaito.cluster._kubelet._volumes import TokenSource
from kaito.cluster._meta import TimeSource, system_clock
from kaito.cluster._sim import PodStatusWriter

__all__ = ("Attachment", "ClusterHosts", "ExecSession", "LocalKubelet", "ServiceEnvironment")

log = structlog.get_logger(__name__)

ServiceEnvironment = Callable[[Obj], Awaitable[Mapping[str, str]]]
"""``service_env(pod)`` -> the Service variables of the Pod's namespace (``FOO_SERVICE_HOST``)."""

ClusterHosts = Callable[[str], list[tuple[str, list[str]]]]
"""``hosts(namespace)`` -> ``(ip, names)`` lines of cluster names for a Pod of ``namespace``."""

_EXEC_OUTPUT_LIMIT = 10 * 1024
_HOST_FALLBACK = (
    "containers run as plain processes of this machine: volume mount paths, image files, the "
    "working directory and the termination-message path are rewritten to host folders where "
    "they appear in command, args and env; paths a program builds itself, readOnly mounts, a "
    "private /tmp, hostname and PID namespace are not provided"
)


def _not_found(name: str) -> StatusError:
    return StatusError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})


def _bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


_OWNED = re.compile(r"^kaito-kubelet-(\d+)-")


def _remove_orphans(folders: list[Path]) -> None:
    """Remove the folders (memory volumes and Secrets included) of local kubelets whose process
    is gone: one that was killed could not clean up after itself."""
    for folder in folders:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _OWNED.match(entry.name)
            if match is None or Path(f"/proc/{match.group(1)}").exists():
                continue
            log.info("kubelet_orphan_removed", path=str(entry))
            shutil.rmtree(entry, ignore_errors=True)


def _tmpfs(path: Path) -> bool:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    return any(
        len(parts) > 2 and parts[1] == str(path) and parts[2] == "tmpfs"
        for parts in (line.split() for line in mounts)
    )


@attrs.define
class ExecSession:
    """A command running in a container (``kubectl exec``); from :meth:`LocalKubelet.exec`."""

    process: ContainerProcess
    output: MemoryObjectReceiveStream[tuple[str, bytes]]
    """``(stream, data)`` with stream ``stdout`` or ``stderr`` (only ``stdout`` with a tty);
    ends when the command's output closes."""

    async def send_stdin(self, data: bytes) -> None:
        """Write to the command's stdin (started with ``stdin=True``)."""
        await self.process.send_stdin(data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        await self.process.close_stdin()

    def resize(self, width: int, height: int) -> None:
        """Resize the terminal (``tty=True``)."""
        self.process.resize(width, height)

    async def wait(self) -> int:
        """The command's exit code (``128 + N`` when killed by signal N)."""
        return await self.process.wait()


@attrs.define
class Attachment:
    """A running container's streams (``kubectl attach``); from :meth:`LocalKubelet.attach`."""

    process: ContainerProcess
    output: MemoryObjectReceiveStream[tuple[str, bytes]]
    """What the container writes from now on, as ``(stream, data)`` (for the first attach of an
    interactive container, ``stdin`` and ``stdinOnce``, what it wrote before too)."""
    stdin: bool
    tty: bool
    stdin_once: bool = False

    async def send_stdin(self, data: bytes) -> None:
        """Write to the container's stdin (its spec has ``stdin: true``)."""
        if not self.stdin:
            raise _bad_request("the container was not started with stdin: true")
        await self.process.send_stdin(data)

    def resize(self, width: int, height: int) -> None:
        """Resize the container's terminal (``tty: true``)."""
        self.process.resize(width, height)


class LocalKubelet:
    """Runs Pods as local processes (pass it to ``start_cluster(kubelet=...)``).

    Use it as an async context manager around the cluster (or let ``start_cluster(kubelet=
    "local")`` do it): entering detects the sandbox, leaving stops what is left and removes the
    kubelet's folders. Every Pod gets an IP of ``pod_cidr`` on loopback, every Node a host IP of
    ``node_cidr``; images resolve through ``images``; probes, back-off and grace periods wait on
    ``clock``.
    """

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        sandbox: str = "auto",
        images: ImageTable | None = None,
        clock: KubeletClock | None = None,
        wall: TimeSource = system_clock,
        pod_cidr: str = DEFAULT_POD_CIDR,
        node_cidr: str = DEFAULT_NODE_CIDR,
        shutdown_grace: float = 10.0,
        max_log_bytes: int = 10 * 1024 * 1024,
        memory_volumes: bool = True,
        token_source: TokenSource | None = None,
        service_env: ServiceEnvironment | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._root_setting = Path(root) if root is not None else None
        self._sandbox_mode = sandbox
        self.images = images or ImageTable()
        self.clock: KubeletClock = clock or MonotonicTime()
        self.wall = wall
        self.pod_addresses = AddressPool(pod_cidr)
        self.node_addresses = AddressPool(node_cidr)
        self.shutdown_grace = shutdown_grace
        self.max_log_bytes = max_log_bytes
        self.token_source = token_source
        self._service_env = service_env
        self._network_env: Callable[[Obj], Mapping[str, str]] | None = None
        self.cluster_hosts: ClusterHosts | None = None
        self._memory_volumes = memory_volumes
        self.backoff = BackOff()
        self.prober = Prober(self.exec_capture)
        self.metrics = KubeletMetrics(
            registry or CollectorRegistry(),
            running_pods=lambda: len(self._pods),
            running_containers=lambda: sum(
                1 for pod in self._pods.values() for c in pod.containers if c.running
            ),
        )
        self._pods: dict[str, PodRuntime] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self._sandbox: Sandbox | None = None
        self._root: Path | None = None
        self._own_root = False
        self.memory_root: Path | None = None
        self._image_files: dict[str, dict[str, Path]] = {}
        self._runtime_checked: dict[str, str] = {}
        self._registered_nodes: set[str] = set()
        self._execs: set[ContainerProcess] = set()
        self._lock = anyio.Lock()
        self._pods_changed = anyio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> LocalKubelet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Detect the sandbox and create the kubelet's folders (idempotent)."""
        async with self._lock:
            if self._sandbox is not None:
                return
            sandbox, reason = await anyio.to_thread.run_sync(detect_sandbox, self._sandbox_mode)
            prefix = f"kaito-kubelet-{os.getpid()}-"
            shm = Path("/dev/shm")
            await anyio.to_thread.run_sync(_remove_orphans, [Path(tempfile.gettempdir()), shm])
            if self._root_setting is None:
                self._root = Path(tempfile.mkdtemp(prefix=prefix))
                self._own_root = True
            else:
                self._root = self._root_setting
                self._root.mkdir(parents=True, exist_ok=True)
            if self._memory_volumes and _tmpfs(shm):
                self.memory_root = Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
            self._sandbox = sandbox
            if sandbox.isolated:
                log.info(
                    "kubelet_sandbox", sandbox=sandbox.name, reason=reason, root=str(self._root)
                )
            else:
                log.warning(
                    "kubelet_sandbox_unavailable",
                    sandbox=sandbox.name,
                    reason=reason,
                    fallback=_HOST_FALLBACK,
                    root=str(self._root),
                )

    async def aclose(self) -> None:
        """Stop every Pod still running here and remove the kubelet's folders."""
        with anyio.CancelScope(shield=True):
            for pod in list(self._pods.values()):
                await pod.stop()
            self._pods.clear()
            self._by_name.clear()
            for process in list(self._execs):
                await process.stop(0, self.clock)
            await self.prober.aclose()
            if self.memory_root is not None:
                await anyio.to_thread.run_sync(shutil.rmtree, self.memory_root, True)
                self.memory_root = None
            if self._own_root and self._root is not None:
                await anyio.to_thread.run_sync(shutil.rmtree, self._root, True)
            self._sandbox = None

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran (and :meth:`aclose` did not yet)."""
        return self._sandbox is not None

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox containers run in (after :meth:`start`)."""
        if self._sandbox is None:
            raise RuntimeError("the local kubelet is not started; use it as `async with`")
        return self._sandbox

    @property
    def root(self) -> Path:
        """The kubelet's folder (pods, volumes, logs, images)."""
        if self._root is None:
            raise RuntimeError("the local kubelet is not started; use it as `async with`")
        return self._root

    # -- the Kubelet Protocol -------------------------------------------------------------

    async def run_pod(self, pod: Obj, status: PodStatusWriter) -> None:
        """Run ``pod`` until it is deleted (see :class:`~kaito.cluster.Kubelet`)."""
        await self.start()
        runtime = PodRuntime(self, pod, status)
        self._pods[runtime.uid] = runtime
        self._by_name[(runtime.namespace, runtime.name)] = runtime.uid
        log.info("kubelet_pod_started", pod=runtime.display, node=status.node_name)
        try:
            await runtime.run()
        finally:
            self._pods.pop(runtime.uid, None)
            if self._by_name.get((runtime.namespace, runtime.name)) == runtime.uid:
                del self._by_name[(runtime.namespace, runtime.name)]
            self._pods_changed.set()
            self._pods_changed = anyio.Event()

    async def wait_stopped(self, namespace: str, name: str) -> None:
        """Wait until no Pod ``namespace/name`` runs here (its processes stopped, folders gone)."""
        while (namespace, name) in self._by_name:
            await self._pods_changed.wait()

    # -- what pods need -------------------------------------------------------------------

    async def resolve_image(self, image: str) -> ImageProfile:
        """The profile ``image`` runs as (raises :class:`ImageError` when it cannot run here)."""
        profile = self.images.resolve(image)
        if profile.name in ("kaito-runtime", "kaito-manager"):
            problem = await self._check_runtime()
            if problem:
                raise ImageError(
                    "ErrImagePull",
                    f'Failed to pull image "{image}": it runs as {profile.runs_as}, which '
                    f"{problem}; install the project there (pip install -e '.[runtime]') or give "
                    "the kubelet another interpreter (ImageTable(python=...))",
                )
        return profile

    async def _check_runtime(self) -> str:
        python = self.images.python
        if python in self._runtime_checked:
            return self._runtime_checked[python]
        if python == sys.executable:
            problem = "" if importlib.util.find_spec("kaito_runtime") else "has no kaito_runtime"
        else:

            def check() -> str:
                try:
                    done = subprocess.run(
                        [python, "-c", "import kaito_runtime"],
                        capture_output=True,
                        timeout=60,
                        check=False,
                    )
                except (OSError, subprocess.TimeoutExpired) as error:
                    return f"cannot be run ({error})"
                return "" if done.returncode == 0 else "cannot import kaito_runtime"

            problem = await anyio.to_thread.run_sync(check)
        self._runtime_checked[python] = problem
        return problem

    async def image_files(self, profile: ImageProfile) -> dict[str, Path]:
        """The image's files written under the kubelet's folder: container path -> host path
        (a folder when the files share one below ``/``)."""
        cached = self._image_files.get(profile.name)
        if cached is not None:
            return cached
        base = self.root / "images" / profile.name

        def write() -> dict[str, Path]:
            mounts: dict[str, Path] = {}
            for path, content in profile.files.items():
                host = base / path.lstrip("/")
                host.parent.mkdir(parents=True, exist_ok=True)
                host.write_text(content)
                host.chmod(0o755)
                parent = str(Path(path).parent)
                if parent == "/":
                    mounts[path] = host
                else:
                    mounts[parent] = host.parent
            return mounts

        files = await anyio.to_thread.run_sync(write)
        self._image_files[profile.name] = files
        return files

    async def node_address(self, writer: PodStatusWriter) -> str:
        """The host IP of the Pod's node; reports it in the Node's addresses the first time."""
        node = writer.node_name or "unknown"
        address = self.node_addresses.allocate(node)
        if node in self._registered_nodes or not writer.node_name:
            return address
        self._registered_nodes.add(node)
        try:
            await writer.client.patch(
                "v1",
                "Node",
                node,
                {
                    "status": {
                        "addresses": [
                            {"type": "InternalIP", "address": address},
                            {"type": "Hostname", "address": node},
                        ]
                    }
                },
                subresource="status",
                field_manager="kubelet",
            )
        except StatusError as error:
            log.debug("kubelet_node_address_not_reported", node=node, error=error.message)
        return address

    async def node_allocatable(self, writer: PodStatusWriter) -> dict[str, str]:
        """The Pod's node's ``status.allocatable`` (limits of the downward API default to it)."""
        try:
            node = await writer.client.get("v1", "Node", writer.node_name)
        except StatusError:
            return {}
        status = node.get("status") or {}
        return {
            str(k): str(v)
            for k, v in (status.get("allocatable") or status.get("capacity") or {}).items()
        }

    async def service_env(self, pod: Obj) -> Mapping[str, str]:
        """The Service variables for ``pod`` (none until Service networking plugs in)."""
        if self._network_env is not None:
            return self._network_env(pod)
        if self._service_env is None or (pod.get("spec") or {}).get("enableServiceLinks") is False:
            return {}
        return await self._service_env(pod)

    def use_network(
        self,
        *,
        service_env: Callable[[Obj], Mapping[str, str]] | None,
        hosts: ClusterHosts | None,
    ) -> None:
        """Plug in Service networking (``None`` unplugs it): ``service_env(pod)`` gives every
        Service variable of a new container (it honours ``enableServiceLinks`` itself), and
        ``hosts(namespace)`` the cluster names of each Pod's ``/etc/hosts``."""
        self._network_env = service_env
        self.cluster_hosts = hosts

    async def refresh_hosts(self) -> None:
        """Rewrite the ``/etc/hosts`` of every running Pod (in place, so that the file its
        containers see changes too)."""
        for pod in list(self._pods.values()):
            text = pod.hosts_text(pod.pod_ip)
            await anyio.to_thread.run_sync(functools.partial(pod.write_hosts, text, create=False))

    def pod_address(self, namespace: str, pod: str) -> str:
        """The IP of a Pod running here (``kubectl port-forward`` connects to its ports).

        Raises:
            StatusError: 404 for a Pod this kubelet does not run, 400 before it has an IP.
        """
        runtime = self._pod(namespace, pod)
        if not runtime.sandbox_ready or not runtime.pod_ip:
            raise _bad_request(f"pod {pod} does not have a host assigned")
        return runtime.pod_ip

    # -- node-side APIs -------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> PodRuntime:
        uid = self._by_name.get((namespace, name))
        pod = self._pods.get(uid) if uid else None
        if pod is None:
            raise _not_found(name)
        return pod

    def _container(self, pod: PodRuntime, container: str | None) -> ContainerRuntime:
        if not container:
            if len(pod.containers) == 1:
                return pod.containers[0]
            names = " ".join(c.name for c in pod.containers)
            message = (
                f"a container name must be specified for pod {pod.name}, choose one of: [{names}]"
            )
            if pod.init_containers:
                message += (
                    " or one of the init containers: ["
                    + " ".join(c.name for c in pod.init_containers)
                    + "]"
                )
            raise _bad_request(message)
        runtime = pod.container(container)
        if runtime is None:
            raise _bad_request(f"container {container} is not valid for pod {pod.name}")
        return runtime

    def read_logs(
        self, namespace: str, pod: str, options: LogOptions | None = None
    ) -> AsyncIterator[bytes]:
        """A container's log as ``kubectl logs`` shows it (``GET pods/NAME/log``).

        Validation happens here, before anything is read, so a caller can answer with the
        error before it starts a response.

        Raises:
            StatusError: 404 for a Pod this kubelet does not run; 400 (the kubelet's messages) for
                a missing or unknown container, no previous run, or a container still waiting.
        """
        options = options or LogOptions()
        runtime = self._container(self._pod(namespace, pod), options.container)
        state = runtime.state
        if options.previous:
            run = runtime.previous
            if run is None or not state.last_state.get("terminated"):
                raise _bad_request(
                    f'previous terminated container "{runtime.name}" in pod "{pod}" not found'
                )
        else:
            run = runtime.current
            if run is None:
                reason = (state.waiting or {}).get("reason", "ContainerCreating")
                detail = {
                    "ErrImagePull": "image can't be pulled",
                    "ImagePullBackOff": "trying and failing to pull image",
                }.get(reason, reason)
                raise _bad_request(
                    f'container "{runtime.name}" in pod "{pod}" is waiting to start: {detail}'
                )
        return run.log.read(options)

    def _running(self, namespace: str, pod: str, container: str | None) -> ContainerRuntime:
        runtime = self._container(self._pod(namespace, pod), container)
        if not runtime.running:
            raise _bad_request(f'container not found ("{runtime.name}")')
        return runtime

    @asynccontextmanager
    async def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        command: list[str] | tuple[str, ...],
        *,
        stdin: bool = False,
        tty: bool = False,
    ) -> AsyncIterator[ExecSession]:
        """Run ``command`` in a running container, in its namespaces and with its environment
        (``kubectl exec``); leaving the block kills the command if it still runs.

        Raises:
            StatusError: 404/400 as for :meth:`read_logs`, 400 when the container is not running,
                500 when the command cannot be executed.
        """
        if not command:
            raise _bad_request("you must specify at least one command for the container")
        runtime = self._running(namespace, pod, container)
        process = await self._start_exec(runtime, tuple(command), stdin=stdin, tty=tty)
        send, receive = anyio.create_memory_object_stream[tuple[str, bytes]](64)
        pumped = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                async def write(stream: str, data: bytes) -> None:
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await send.send((stream, data))

                try:
                    async with send:
                        await process.pump(write)
                finally:
                    pumped.set()

            tg.start_soon(pump)
            try:
                yield ExecSession(process, receive)
            finally:
                with anyio.CancelScope(shield=True):
                    await process.stop(0, self.clock)
                    receive.close()
                    with anyio.move_on_after(2):
                        await pumped.wait()
                    tg.cancel_scope.cancel()
                    await process.aclose()
                    self._execs.discard(process)

    async def _start_exec(
        self, runtime: ContainerRuntime, argv: tuple[str, ...], *, stdin: bool, tty: bool
    ) -> ContainerProcess:
        run, live = runtime.live()
        spec = attrs.evolve(run.spec, argv=argv)
        missing = await anyio.to_thread.run_sync(runtime.missing_executable, spec)
        if missing:
            raise StatusError(
                500,
                "InternalError",
                "OCI runtime exec failed: exec failed: unable to start container process: "
                f"{missing}: unknown",
            )
        target = await live.namespace_pid()
        launch = await anyio.to_thread.run_sync(self.sandbox.enter, spec, target, argv)
        process = await ContainerProcess.start(launch, stdin=stdin, tty=tty, sandboxed=False)
        self._execs.add(process)
        return process

    async def exec_capture(
        self, key: tuple[str, str], argv: tuple[str, ...], timeout_s: float
    ) -> tuple[int | None, bytes]:
        """Run ``argv`` in container ``key`` (pod uid, name) and collect its output (at most
        10 KiB); ``(None, output)`` when it ran past ``timeout_s`` and was killed."""
        pod = self._pods.get(key[0])
        runtime = pod.container(key[1]) if pod else None
        if runtime is None or not runtime.running:
            return 1, b"the container is not running"
        try:
            process = await self._start_exec(runtime, argv, stdin=False, tty=False)
        except StatusError as error:
            return 126, error.message.encode()
        output = bytearray()

        async def write(stream: str, data: bytes) -> None:
            del stream
            if len(output) < _EXEC_OUTPUT_LIMIT:
                output.extend(data[: _EXEC_OUTPUT_LIMIT - len(output)])

        code: int | None = None
        try:
            with anyio.move_on_after(timeout_s):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(process.pump, write)
                    code = await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                if code is None:
                    await process.stop(0, self.clock)
                process.reap()
                await process.aclose()
                self._execs.discard(process)
        return code, bytes(output)

    @asynccontextmanager
    async def attach(
        self, namespace: str, pod: str, container: str | None
    ) -> AsyncIterator[Attachment]:
        """Attach to a running container's output (and stdin, when its spec asks for stdin);
        with ``stdinOnce`` its stdin closes when the first attachment ends."""
        runtime = self._running(namespace, pod, container)
        run, live = runtime.live()
        send, receive = anyio.create_memory_object_stream[tuple[str, bytes]](256)
        # Like ``docker run -it``, whose client is attached before the process starts, the
        # first attach of an interactive container (``kubectl run -it``) does not lose what
        # the process wrote before it got there.
        first, run.attached = not run.attached, True
        stop = live.listen(send, replay=first and bool(runtime.spec.get("stdinOnce")))
        try:
            yield Attachment(
                live,
                receive,
                stdin=bool(runtime.spec.get("stdin")),
                tty=bool(runtime.spec.get("tty")),
                stdin_once=bool(runtime.spec.get("stdinOnce")),
            )
        finally:
            stop()
            send.close()
            receive.close()
            if runtime.spec.get("stdinOnce") and runtime.spec.get("stdin"):
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await live.close_stdin()

    def process_ids(self) -> set[int]:
        """Every live process of every container and exec (for leftover checks)."""
        pids: set[int] = set()
        for pod in self._pods.values():
            for runtime in pod.containers + pod.init_containers:
                for run in runtime.runs:
                    if run.process is not None:
                        pids.update(pid for pid, _, _ in group_members(run.process.pid))
        for process in self._execs:
            pids.update(pid for pid, _, _ in group_members(process.pid))
        return pids
