"""One container of a Pod on the local kubelet: its image, configuration, runs, probes, restarts
and logs.

A *run* is one process of the container (``restartCount`` counts them after the first). Each
run has its own log file and scratch folder (its ``/tmp`` and termination-message file); the
current and the previous run are kept, as the kubelet keeps the previous container for
``kubectl logs --previous``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import attrs
import structlog

from kaito.cluster._json import Obj
from kaito.cluster._kubelet._env import build_env
from kaito.cluster._kubelet._expand import expand, expand_strict
from kaito.cluster._kubelet._fields import ContainerConfigError
from kaito.cluster._kubelet._images import ImageError, ImageProfile
from kaito.cluster._kubelet._logs import ContainerLog
from kaito.cluster._kubelet._probes import ProbeResult, probe_loop
from kaito.cluster._kubelet._process import ContainerProcess
from kaito.cluster._kubelet._sandbox import LaunchSpec, Mount
from kaito.cluster._kubelet._status import ContainerState
from kaito.cluster._meta import format_time

if TYPE_CHECKING:
    from kaito.cluster._kubelet._pod import PodRuntime

__all__ = ("ContainerRuntime", "go_duration")

log = structlog.get_logger(__name__)

#: The kubelet keeps at most this much of a termination-message file.
MAX_TERMINATION_MESSAGE = 4096
#: What an interactive container (``stdin`` and ``stdinOnce``, as ``kubectl run -it`` makes
#: it) keeps of its output for the first ``attach`` (bytes).
SCROLLBACK = 64 * 1024
#: ``FallbackToLogsOnError`` takes at most this many lines and bytes of the log.
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


def go_duration(seconds: float) -> str:
    """Whole seconds as Go prints a ``time.Duration`` (``10s``, ``2m40s``, ``5m0s``)."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@attrs.define
class _Run:
    """One process of the container."""

    number: int
    container_id: str
    scratch: Path
    log: ContainerLog
    spec: LaunchSpec
    process: ContainerProcess | None = None
    started_at: str = ""
    attached: bool = False
    """Someone attached to this run already (the first attach sees its earlier output)."""


def _remove_runs(runs: list[_Run]) -> None:
    for run in runs:
        for path in (run.log.path, run.log.rotated):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        shutil.rmtree(run.scratch, ignore_errors=True)


class StartFailure(Exception):
    """The container could not start (``StartError``)."""


class ContainerRuntime:
    """Runs one container of ``pod`` (an init container when ``init``)."""

    def __init__(self, pod: PodRuntime, spec: Obj, *, init: bool) -> None:
        self.pod = pod
        self.spec = spec
        self.name = str(spec.get("name", ""))
        self.init = init
        self.field_path = f"spec.{'initContainers' if init else 'containers'}{{{self.name}}}"
        self.state = ContainerState(name=self.name, image=str(spec.get("image", "")), init=init)
        self.runs: list[_Run] = []
        self.profile: ImageProfile | None = None
        self.finished_at_monotonic = 0.0
        """When the last run ended on the kubelet's clock (where the crash-loop back-off starts)."""

    # -- the runs -------------------------------------------------------------------------

    @property
    def current(self) -> _Run | None:
        return self.runs[-1] if self.runs else None

    @property
    def previous(self) -> _Run | None:
        return self.runs[-2] if len(self.runs) > 1 else None

    @property
    def running(self) -> bool:
        run = self.current
        return (
            run is not None
            and run.process is not None
            and run.process.exit_code is None
            and self.state.running is not None
        )

    def live(self) -> tuple[_Run, ContainerProcess]:
        """The current run and its process (the container must be running)."""
        run = self.current
        if run is None or run.process is None:
            raise RuntimeError(f"container {self.name} has no process")
        return run, run.process

    def changed(self) -> None:
        self.pod.changed()

    async def _event(self, type: str, reason: str, message: str) -> None:
        await self.pod.events.record(type, reason, message, field_path=self.field_path)

    # -- image ----------------------------------------------------------------------------

    async def pull(self) -> ImageProfile:
        """The image's profile; reports ``ErrImagePull``/``ImagePullBackOff`` until it resolves."""
        kubelet = self.pod.kubelet
        image = self.state.image
        key = ("image", self.pod.uid, image)
        while True:
            try:
                profile = await kubelet.resolve_image(image)
            except ImageError as error:
                if error.reason == "InvalidImageName":
                    self.state.state = {
                        "waiting": {"reason": error.reason, "message": error.message}
                    }
                    self.changed()
                    await self._event("Warning", "InspectFailed", error.message)
                    await self._event("Warning", "Failed", f"Error: {error.reason}")
                    await anyio.sleep_forever()
                now = kubelet.clock.now()
                if self.spec.get("imagePullPolicy") == "Never":
                    message = f'Container image "{image}" is not present with pull policy of Never'
                    self.state.state = {
                        "waiting": {"reason": "ErrImageNeverPull", "message": message}
                    }
                    self.changed()
                    await self._event("Warning", "ErrImageNeverPull", message)
                    await kubelet.clock.sleep(kubelet.backoff.next(key, now))
                    continue
                # A failed pull says ErrImagePull, then ImagePullBackOff until the next try.
                await self._event("Normal", "Pulling", f'Pulling image "{image}"')
                self.state.state = {"waiting": {"reason": "ErrImagePull", "message": error.message}}
                await self.pod.flush()
                await self._event("Warning", "Failed", error.message)
                await self._event("Warning", "Failed", "Error: ErrImagePull")
                delay = kubelet.backoff.next(key, now)
                self.state.state = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": (
                            f'Back-off pulling image "{image}": ErrImagePull: {error.message}'
                        ),
                    }
                }
                self.changed()
                await self._event("Normal", "BackOff", f'Back-off pulling image "{image}"')
                await self._event("Warning", "Failed", "Error: ImagePullBackOff")
                await kubelet.clock.sleep(delay)
                continue
            kubelet.backoff.forget(key)
            if self.profile is None:
                await self._event(
                    "Normal",
                    "Pulled",
                    f'Container image "{image}" already present on machine and can be accessed '
                    f"by the pod; it runs as {profile.runs_as}",
                )
            self.profile = profile
            self.state.image_id = profile.image_id
            return profile

    # -- configuration --------------------------------------------------------------------

    async def configure(self, profile: ImageProfile, run_number: int) -> LaunchSpec:
        """The run's environment, command, working directory and mounts.

        Raises:
            ContainerConfigError: a reference cannot be resolved (``CreateContainerConfigError``).
            StartFailure: there is nothing to run.
        """
        pod = self.pod
        pod.forget_lookups()
        result = await build_env(
            self.spec, pod.facts, pod.lookup, service_env=await pod.kubelet.service_env(pod.pod)
        )
        for kind, source, keys in result.skipped:
            await self._event(
                "Warning",
                "InvalidEnvironmentVariableNames",
                f"Keys [{', '.join(keys)}] from the EnvFrom {kind.lower()} {source} were "
                "skipped since they are considered invalid environment variable names.",
            )
        env = dict(result.env)
        command = [expand(str(a), env) for a in self.spec.get("command") or []]
        args = [expand(str(a), env) for a in self.spec.get("args") or []]
        if command:
            argv = [*command, *args]
        elif args:
            argv = [*profile.entrypoint, *args]
        else:
            argv = [*profile.entrypoint, *profile.cmd]
        if not argv:
            raise StartFailure("no command specified")
        scratch = pod.pod_dir / "containers" / self.name / str(run_number)
        await anyio.to_thread.run_sync(lambda: scratch.mkdir(parents=True, exist_ok=True))
        mounts = await self._mounts(profile, scratch, env)
        full_env = {**profile.env, "HOSTNAME": pod.hostname, **env}
        termination = str(self.spec.get("terminationMessagePath") or "/dev/termination-log")
        if profile.termination_log_env and not pod.kubelet.sandbox.isolated:
            full_env.setdefault(profile.termination_log_env, termination)
        return LaunchSpec(
            argv=tuple(argv),
            env=full_env,
            workdir=str(self.spec.get("workingDir") or profile.workdir or "/"),
            mounts=tuple(mounts),
            scratch=scratch,
            hostname=pod.hostname,
            host_paths=profile.host_paths,
        )

    async def _mounts(
        self, profile: ImageProfile, scratch: Path, env: dict[str, str]
    ) -> list[Mount]:
        pod = self.pod
        mounts = [
            Mount(path, host, read_only=True)
            for path, host in (await pod.kubelet.image_files(profile)).items()
        ]
        if not (pod.pod.get("spec") or {}).get("hostNetwork"):
            mounts.append(Mount("/etc/hosts", pod.pod_dir / "etc-hosts", read_only=True))
        termination = scratch / "termination-log"
        termination.touch()
        mounts.append(
            Mount(
                str(self.spec.get("terminationMessagePath") or "/dev/termination-log"), termination
            )
        )
        for mount in self.spec.get("volumeMounts") or []:
            name = str(mount.get("name", ""))
            volume = pod.volumes.get(name)
            if volume is None:
                raise ContainerConfigError(
                    f'cannot find volume "{name}" to mount into container "{self.name}"'
                )
            sub_path = str(mount.get("subPath") or "")
            if mount.get("subPathExpr"):
                expanded = expand_strict(str(mount["subPathExpr"]), env)
                if expanded is None:
                    raise ContainerConfigError(
                        f'failed to prepare subPath for volumeMount "{name}" of container '
                        f'"{self.name}": a variable in subPathExpr is not defined'
                    )
                sub_path = expanded
            host = volume.path
            if sub_path:
                pure = PurePosixPath(sub_path)
                if pure.is_absolute() or ".." in pure.parts:
                    raise ContainerConfigError(
                        f'subPath "{sub_path}" of volumeMount "{name}" must be a relative path '
                        "without '..'"
                    )
                host = volume.path / sub_path
                if not host.exists() and not volume.read_only:
                    host.mkdir(parents=True, exist_ok=True)
            mounts.append(
                Mount(
                    str(mount.get("mountPath", "")),
                    host,
                    read_only=volume.read_only or bool(mount.get("readOnly")),
                )
            )
        return mounts

    # -- running --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Pull, configure, start and wait for one run; its exit code.

        Waits (with the kubelet's back-off) while the image cannot be pulled or the
        configuration cannot be resolved; a command that cannot be executed is a run that
        ends with ``StartError`` (exit code 128).
        """
        kubelet = self.pod.kubelet
        profile = await self.pull()
        run_number = len(self.runs)
        config_key = ("config", self.pod.uid, self.name)
        while True:
            try:
                spec = await self.configure(profile, run_number)
                break
            except ContainerConfigError as error:
                self.state.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(error)}
                }
                self.changed()
                await self._event("Warning", "Failed", f"Error: {error}")
                now = kubelet.clock.now()
                await kubelet.clock.sleep(kubelet.backoff.next(config_key, now))
            except StartFailure as error:
                return await self._start_error(run_number, str(error))
        kubelet.backoff.forget(config_key)
        missing = await anyio.to_thread.run_sync(self.missing_executable, spec)
        if missing:
            return await self._start_error(run_number, missing, spec=spec)
        run = await self._new_run(run_number, spec)
        await self._event("Normal", "Created", f"Created container {self.name}")
        # Assembling the root reads the host's folders: off the event loop.
        launch = await anyio.to_thread.run_sync(kubelet.sandbox.launch, spec)
        try:
            interactive = bool(self.spec.get("stdin")) and bool(self.spec.get("stdinOnce"))
            process = await ContainerProcess.start(
                launch,
                stdin=bool(self.spec.get("stdin")),
                tty=bool(self.spec.get("tty")),
                sandboxed=kubelet.sandbox.isolated,
                scrollback=SCROLLBACK if interactive else 0,
            )
        except OSError as error:
            return await self._start_error(run_number, str(error), run=run)
        run.process = process
        run.started_at = format_time(kubelet.wall())
        self._begin_running(run)
        kubelet.metrics.started(self.init)
        log.info(
            "kubelet_container_started",
            pod=self.pod.display,
            container=self.name,
            pid=process.pid,
            run=run_number,
        )
        return await self._supervise(run, process)

    def missing_executable(self, spec: LaunchSpec) -> str:
        """Why ``spec``'s program cannot be executed (empty when it can). Blocking."""
        program = spec.argv[0]
        sandbox = self.pod.kubelet.sandbox
        if "/" in program:
            path = program if program.startswith("/") else f"{spec.workdir.rstrip('/')}/{program}"
            host = sandbox.host_path(spec, path)
            if host.is_file() and os.access(host, os.X_OK):
                return ""
            return f'exec: "{program}": stat {program}: no such file or directory'
        for folder in spec.env.get("PATH", "").split(":"):
            if not folder:
                continue
            host = sandbox.host_path(spec, f"{folder.rstrip('/')}/{program}")
            if host.is_file() and os.access(host, os.X_OK):
                return ""
        return f'exec: "{program}": executable file not found in $PATH'

    async def _new_run(self, number: int, spec: LaunchSpec) -> _Run:
        """A new run with its log; runs before the previous one are forgotten (files too)."""
        kubelet = self.pod.kubelet
        log_dir = self.pod.pod_dir / "logs" / self.name
        run = _Run(
            number=number,
            container_id=f"kaito://{secrets.token_hex(32)}",
            scratch=spec.scratch,
            log=ContainerLog(
                log_dir / f"{number}.log", wall=kubelet.wall, max_bytes=kubelet.max_log_bytes
            ),
            spec=spec,
        )
        self.runs.append(run)
        forgotten, self.runs[:-2] = self.runs[:-2], []
        for old in forgotten:
            old.log.close()
        if forgotten:
            await anyio.to_thread.run_sync(_remove_runs, forgotten)
        return run

    def _begin_running(self, run: _Run) -> None:
        previous = self.state.terminated
        if previous is not None:
            self.state.last_state = {"terminated": previous}
        if run.number > 0:
            self.state.restart_count = run.number
        self.state.state = {"running": {"startedAt": run.started_at}}
        self.state.container_id = run.container_id
        self.state.started = not self.spec.get("startupProbe")
        self.state.ready = (
            self.init is False and not self.spec.get("readinessProbe") and self.state.started
        )
        self.changed()

    async def _start_error(
        self,
        run_number: int,
        message: str,
        *,
        spec: LaunchSpec | None = None,
        run: _Run | None = None,
    ) -> int:
        """Record a run that could not start (``StartError``, exit code 128)."""
        kubelet = self.pod.kubelet
        if run is None and spec is not None:
            run = await self._new_run(run_number, spec)
        full = (
            "failed to create containerd task: failed to create shim task: OCI runtime create "
            f"failed: runc create failed: unable to start container process: {message}: unknown"
        )
        now = format_time(kubelet.wall())
        if run is not None:
            run.started_at = now
            run.log.close()
        previous = self.state.terminated
        if previous is not None:
            self.state.last_state = {"terminated": previous}
        if run_number > 0:
            self.state.restart_count = run_number
        self.state.state = {
            "terminated": {
                "exitCode": 128,
                "reason": "StartError",
                "message": full,
                "startedAt": "1970-01-01T00:00:00Z",
                "finishedAt": now,
                **({"containerID": run.container_id} if run is not None else {}),
            }
        }
        self.state.ready = False
        self.state.started = False
        self.finished_at_monotonic = kubelet.clock.now()
        self.changed()
        kubelet.metrics.start_error(self.init)
        await self._event("Warning", "Failed", f"Error: {full}")
        self.pod.kubelet_log_exit(self, 128)
        return 128

    async def _supervise(self, run: _Run, process: ContainerProcess) -> int:
        """Pump the output, probe, and wait for the run to end. Cancelled (the Pod is deleted
        or the kubelet stops), it stops the run gracefully first, still logging its output."""
        kubelet = self.pod.kubelet
        pumped = anyio.Event()
        pump_scope = anyio.CancelScope(shield=True)

        async def write(stream: str, data: bytes) -> None:
            run.log.write(stream, data)

        async def pump() -> None:
            with pump_scope:
                try:
                    await process.pump(write)
                finally:
                    pumped.set()

        async def drain() -> None:
            # The pipes close once every process of the container is gone; a process that left
            # the container's session (host sandbox only) must not hold its log open.
            with anyio.move_on_after(2):
                await pumped.wait()
            pump_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            await self._event("Normal", "Started", f"Started container {self.name}")
            if not self.init:
                tg.start_soon(self._probes, run, process)
                if (self.spec.get("lifecycle") or {}).get("postStart"):
                    tg.start_soon(self._post_start, process)
            try:
                code = await process.wait()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await self._terminate(process, self.pod.stop_grace())
                    await drain()
                    run.log.close()
                    await process.aclose()
                raise
            process.reap()
            await drain()
            tg.cancel_scope.cancel()
        run.log.close()
        await process.aclose()
        finished = format_time(kubelet.wall())
        message = await anyio.to_thread.run_sync(self._termination_message, run, code)
        terminated: Obj = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": finished,
            "containerID": run.container_id,
        }
        if message:
            terminated["message"] = message
        self.state.state = {"terminated": terminated}
        self.state.ready = self.init and code == 0
        self.state.started = False
        self.finished_at_monotonic = kubelet.clock.now()
        self.changed()
        self.pod.kubelet_log_exit(self, code)
        return code

    def _termination_message(self, run: _Run, code: int) -> str:
        path = run.scratch / "termination-log"
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_TERMINATION_MESSAGE)
        except OSError:
            data = b""
        policy = self.spec.get("terminationMessagePolicy") or "File"
        if not data.strip() and policy == "FallbackToLogsOnError" and code != 0:
            data = run.log.tail_bytes(max_lines=FALLBACK_LOG_LINES, max_bytes=FALLBACK_LOG_BYTES)
        return data.decode(errors="replace")

    # -- probes and hooks -----------------------------------------------------------------

    async def _probes(self, run: _Run, process: ContainerProcess) -> None:
        kubelet = self.pod.kubelet
        startup = self.spec.get("startupProbe")
        readiness = self.spec.get("readinessProbe")
        liveness = self.spec.get("livenessProbe")

        def runner(probe: Obj) -> Callable[[], Awaitable[ProbeResult]]:
            async def run_probe() -> ProbeResult:
                return await kubelet.prober.run(probe, self.spec, self.pod.pod_ip, self.key)

            return run_probe

        def unhealthy(kind: str) -> Callable[[ProbeResult], Awaitable[None]]:
            async def report(result: ProbeResult) -> None:
                await self._event("Warning", "Unhealthy", f"{kind} probe failed: {result.message}")

            return report

        if startup:
            passed = await probe_loop(
                "startup", startup, runner(startup), kubelet.clock, on_failure=unhealthy("Startup")
            )
            if not passed:
                await self._kill_for_probe(process, "startup", startup)
                return
            self.state.started = True
            self.state.ready = not readiness
            self.changed()
        async with anyio.create_task_group() as tg:
            if readiness:

                async def set_ready(ready: bool) -> None:
                    self.state.ready = ready
                    self.changed()

                tg.start_soon(
                    functools.partial(
                        probe_loop,
                        "readiness",
                        readiness,
                        runner(readiness),
                        kubelet.clock,
                        on_failure=unhealthy("Readiness"),
                        on_change=set_ready,
                    )
                )
            if liveness:
                alive = await probe_loop(
                    "liveness",
                    liveness,
                    runner(liveness),
                    kubelet.clock,
                    on_failure=unhealthy("Liveness"),
                )
                if not alive:
                    tg.cancel_scope.cancel()
                    await self._kill_for_probe(process, "liveness", liveness)

    async def _kill_for_probe(self, process: ContainerProcess, kind: str, probe: Obj) -> None:
        self.state.ready = False
        self.changed()
        await self._event(
            "Normal", "Killing", f"Container {self.name} failed {kind} probe, will be restarted"
        )
        grace = probe.get("terminationGracePeriodSeconds")
        seconds = float(grace) if grace is not None else self.pod.grace_period()
        await self._pre_stop(process, seconds)
        await process.stop(seconds, self.pod.kubelet.clock)

    async def _post_start(self, process: ContainerProcess) -> None:
        hook = self.spec["lifecycle"]["postStart"]
        ok, message = await self._hook(hook, 30.0)
        if not ok:
            await self._event("Warning", "FailedPostStartHook", f"PostStartHook failed: {message}")
            await self._event("Normal", "Killing", "FailedPostStartHook")
            await process.stop(self.pod.grace_period(), self.pod.kubelet.clock)

    async def _pre_stop(self, process: ContainerProcess, grace: float) -> None:
        hook = (self.spec.get("lifecycle") or {}).get("preStop")
        if not hook or process.exit_code is not None:
            return
        with anyio.move_on_after(grace):
            ok, message = await self._hook(hook, grace)
            if not ok:
                await self._event("Warning", "FailedPreStopHook", f"PreStopHook failed: {message}")

    async def _hook(self, hook: Obj, timeout_s: float) -> tuple[bool, str]:
        kubelet = self.pod.kubelet
        if "exec" in hook:
            argv = tuple(str(a) for a in hook["exec"].get("command") or [])
            code, output = await kubelet.exec_capture(self.key, argv, timeout_s)
            if code == 0:
                return True, ""
            return (
                False,
                f"command '{' '.join(argv)}' exited with {code}: {output.decode(errors='replace')}",
            )
        if "httpGet" in hook:
            result = await kubelet.prober.run(
                {"httpGet": hook["httpGet"], "timeoutSeconds": timeout_s},
                self.spec,
                self.pod.pod_ip,
                self.key,
            )
            return result.success, result.message
        if "sleep" in hook:
            await kubelet.clock.sleep(float(hook["sleep"].get("seconds", 0)))
            return True, ""
        return False, "unsupported lifecycle hook"

    @property
    def key(self) -> tuple[str, str]:
        return (self.pod.uid, self.name)

    async def _terminate(self, process: ContainerProcess, grace: float) -> None:
        if process.finished:
            return
        await self._event("Normal", "Killing", f"Stopping container {self.name}")
        await self._pre_stop(process, grace)
        await process.stop(grace, self.pod.kubelet.clock)

    async def stop(self, grace: float) -> None:
        """Make sure the current run is stopped (preStop hook, SIGTERM, SIGKILL after ``grace``
        seconds) and its pipes and log closed."""
        run = self.current
        if run is None or run.process is None:
            return
        await self._terminate(run.process, grace)
        run.process.reap()
        await run.process.aclose()
        run.log.close()
