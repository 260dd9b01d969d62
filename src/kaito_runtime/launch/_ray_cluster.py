"""Multi-node inference pods: the Ray head and the server on the leader, a Ray node on the others.

Runtime layer (launcher). Upstream KAITO runs vLLM's ``multi-node-serving.sh``: on pod 0
``leader --ray_cluster_size=N --ray_port=6379`` (``ray start --head``, then poll ``ray.nodes()``
until N nodes are alive) followed by the vLLM server with ``--pipeline-parallel-size=N
--distributed-executor-backend=ray``; on the other pods ``worker --ray_address=<ws>-0.<ws>-headless.
<ns>.svc.cluster.local --ray_port=6379`` (``ray start --address ... --block``, retried for up to
300 s). This module does the same with the processes owned: ``ray start --block`` and the server
are children stopped by PID, the wait for the nodes reads the GCS and logs its progress, and
when either the head or the server stops, the other is stopped and the pod exits non-zero, so
Kubernetes restarts it and the cluster forms again.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import anyio
import attrs
import structlog

from kaito_runtime.launch._children import OwnedProcess
from kaito_runtime.launch._errors import EXIT_CONFIG, LaunchError
from kaito_runtime.launch._pod import outbound_ip
from kaito_runtime.launch._ray_nodes import (
    DEFAULT_RAY_PORT,
    RayNode,
    RayUnavailableError,
    list_ray_nodes,
    ray_head_command,
    ray_worker_command,
    tcp_check,
)

__all__ = (
    "DEFAULT_JOIN_TIMEOUT",
    "NodeWaiter",
    "RayClusterSpec",
    "Role",
    "child_environment",
    "run_ray",
    "run_ray_leader",
    "run_ray_worker",
)

log = structlog.get_logger(__name__)

Role = Literal["leader", "worker"]
# Upstream's script waits 300 s; workers on freshly provisioned nodes may still be pulling the
# (large) runtime image then, so the default is the startup probe's floor instead.
DEFAULT_JOIN_TIMEOUT = 1800.0
# A progress line at least this often while waiting (and whenever the count changes).
_REPORT_EVERY = 30.0


@attrs.frozen
class RayClusterSpec:
    """One pod's part in the Ray cluster of a multi-node Workspace."""

    role: Role
    nodes: int
    leader_address: str
    ray_port: int = DEFAULT_RAY_PORT
    node_ip: str | None = None
    join_timeout: float = DEFAULT_JOIN_TIMEOUT
    ray_start_args: tuple[str, ...] = ()
    server_command: tuple[str, ...] = ()
    poll_interval: float = 2.0
    stop_grace: float = 30.0

    def __attrs_post_init__(self) -> None:
        if self.nodes < 1:
            raise LaunchError(f"--nodes={self.nodes}: must be at least 1", EXIT_CONFIG)
        if self.role == "leader" and not self.server_command:
            raise LaunchError(
                "the leader needs the server command after '--', e.g. -- python -m "
                "kaito_runtime.inference --model ... --pipeline-parallel-size 2 "
                "--distributed-executor-backend ray",
                EXIT_CONFIG,
            )
        if self.join_timeout <= 0:
            raise LaunchError(
                f"--join-timeout={self.join_timeout:g}: must be positive (seconds)", EXIT_CONFIG
            )

    @property
    def gcs_address(self) -> str:
        """``host:port`` of the GCS as this pod reaches it."""
        host = (self.node_ip or "127.0.0.1") if self.role == "leader" else self.leader_address
        return f"{host}:{self.ray_port}"


NodeLister = Callable[[], Awaitable[list[RayNode]]]


@attrs.define
class NodeWaiter:
    """Wait until ``expected`` Ray nodes are alive, logging progress; the clock is injectable."""

    expected: int
    timeout: float
    list_nodes: NodeLister
    poll_interval: float = 2.0
    clock: Callable[[], float] = anyio.current_time
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    head_exited: Callable[[], int | None] = lambda: None
    leader_address: str = ""

    async def wait(self) -> list[RayNode]:
        """Return the alive nodes once there are enough.

        Raises:
            LaunchError: the head exited, or the nodes did not all join in time (the message
                says which joined and what to check).
        """
        started = self.clock()
        last_count: int | None = None
        last_report = started
        reason = ""
        while True:
            code = self.head_exited()
            if code is not None:
                raise LaunchError(
                    f"ray start --head exited with status {code} before the cluster formed; "
                    "see its output above"
                )
            try:
                alive = [n for n in await self.list_nodes() if n.alive]
                reason = ""
            except RayUnavailableError as exc:
                alive, reason = [], str(exc)
            now = self.clock()
            if len(alive) >= self.expected:
                log.info(
                    "ray_cluster_ready",
                    nodes=len(alive),
                    addresses=[n.address for n in alive],
                    seconds=round(now - started, 1),
                )
                return alive
            if len(alive) != last_count or now - last_report >= _REPORT_EVERY:
                log.info(
                    "ray_cluster_waiting",
                    alive=len(alive),
                    expected=self.expected,
                    addresses=[n.address for n in alive],
                    seconds=round(now - started, 1),
                    reason=reason or None,
                )
                last_count, last_report = len(alive), now
            if now - started >= self.timeout:
                joined = ", ".join(n.address for n in alive) or "none"
                raise LaunchError(
                    f"{len(alive)} of {self.expected} Ray nodes joined within "
                    f"{self.timeout:g}s (joined: {joined}{'; ' + reason if reason else ''}); "
                    "check the worker pods' logs and that they reach "
                    f"{self.leader_address or 'the leader'} (the headless Service)"
                )
            await self.sleep(self.poll_interval)


def _lister(gcs_address: str, timeout: float = 5.0) -> NodeLister:
    async def list_nodes() -> list[RayNode]:
        return await anyio.to_thread.run_sync(list_ray_nodes, gcs_address, timeout)

    return list_nodes


async def _first_exit(*children: OwnedProcess) -> tuple[OwnedProcess, int]:
    """Wait until one of ``children`` exits; return it and its status."""
    first: list[tuple[OwnedProcess, int]] = []
    async with anyio.create_task_group() as tg:

        async def watch(child: OwnedProcess) -> None:
            code = await child.wait()
            first.append((child, code))
            tg.cancel_scope.cancel()

        for child in children:
            tg.start_soon(watch, child)
    return first[0]


async def run_ray_leader(spec: RayClusterSpec, environ: Mapping[str, str]) -> int:
    """Run the Ray head, wait for every node, then the server; return the server's status.

    Raises:
        LaunchError: the head stopped, or the nodes did not join in time.
    """
    head = await OwnedProcess.start(
        "ray-head", ray_head_command(spec.ray_port, spec.node_ip, spec.ray_start_args), env=environ
    )
    try:
        waiter = NodeWaiter(
            expected=spec.nodes,
            timeout=spec.join_timeout,
            list_nodes=_lister(spec.gcs_address),
            poll_interval=spec.poll_interval,
            head_exited=lambda: head.returncode,
            leader_address=f"{spec.leader_address}:{spec.ray_port}",
        )
        await waiter.wait()
        env = {**environ, "RAY_ADDRESS": spec.gcs_address}
        server = await OwnedProcess.start("server", spec.server_command, env=env)
        try:
            stopped, code = await _first_exit(head, server)
        finally:
            await server.stop(spec.stop_grace)
        if stopped is head:
            raise LaunchError(
                f"the Ray head stopped (ray start exited with status {code}) while the server "
                "ran; the pod restarts so the cluster can form again"
            )
        log.info("server_exited", exit_code=code)
        return code
    finally:
        await head.stop(spec.stop_grace)


async def _wait_reachable(spec: RayClusterSpec, deadline: float) -> None:
    last = ""
    while True:
        reason = await anyio.to_thread.run_sync(tcp_check, spec.leader_address, spec.ray_port, 5.0)
        if reason is None:
            return
        if reason != last:
            log.info("ray_head_waiting", leader=spec.leader_address, reason=reason)
            last = reason
        if anyio.current_time() >= deadline:
            raise LaunchError(
                f"the Ray head at {spec.leader_address}:{spec.ray_port} was not reachable within "
                f"{spec.join_timeout:g}s ({reason}); check pod 0 and the headless Service"
            )
        await anyio.sleep(spec.poll_interval)


async def _report_joined(gcs_address: str, node_ip: str, poll_interval: float) -> None:
    list_nodes = _lister(gcs_address)
    while True:
        try:
            nodes = await list_nodes()
        except RayUnavailableError:
            nodes = []
        if any(n.alive and n.address == node_ip for n in nodes):
            log.info("ray_node_joined", node_ip=node_ip, nodes=sum(n.alive for n in nodes))
            return
        await anyio.sleep(poll_interval)


async def run_ray_worker(spec: RayClusterSpec, environ: Mapping[str, str]) -> int:
    """Join the leader's Ray cluster and stay in it; retry joining until the join timeout.

    Returns when the node leaves the cluster (the head went away): a non-zero status, so the
    pod restarts and joins the next head.

    Raises:
        LaunchError: the head was not reachable, or joining kept failing, within the timeout.
    """
    deadline = anyio.current_time() + spec.join_timeout
    await _wait_reachable(spec, deadline)
    try:
        node_ip = spec.node_ip or outbound_ip(spec.leader_address, spec.ray_port)
    except OSError as exc:
        raise LaunchError(
            f"no route to the Ray head {spec.leader_address}: {exc.strerror or exc}"
        ) from None
    command = ray_worker_command(spec.leader_address, spec.ray_port, node_ip, spec.ray_start_args)
    attempt = 0
    while True:
        attempt += 1
        node = await OwnedProcess.start("ray-worker", command, env=environ)
        joined = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:

                async def report(joined: anyio.Event) -> None:
                    await _report_joined(spec.gcs_address, node_ip, spec.poll_interval)
                    joined.set()

                tg.start_soon(report, joined)
                code = await node.wait()
                tg.cancel_scope.cancel()
        finally:
            await node.stop(spec.stop_grace)
        if joined.is_set():
            log.info("ray_node_left", exit_code=code)
            return code or 1
        if anyio.current_time() >= deadline:
            raise LaunchError(
                f"could not join the Ray cluster at {spec.leader_address}:{spec.ray_port} "
                f"within {spec.join_timeout:g}s ({attempt} attempts; ray start exited with "
                f"status {code}); see its output above"
            )
        log.info("ray_join_retry", attempt=attempt, exit_code=code)
        await anyio.sleep(min(5.0, spec.poll_interval * attempt))


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the launcher's children get (a copy taken before Ray is touched)."""
    return dict(os.environ if environ is None else environ)


async def run_ray(spec: RayClusterSpec, environ: Mapping[str, str]) -> int:
    """Run this pod's part: the leader's or a worker's."""
    log.info(
        "ray_launch",
        role=spec.role,
        nodes=spec.nodes,
        leader=spec.leader_address,
        ray_port=spec.ray_port,
        node_ip=spec.node_ip,
    )
    if spec.role == "leader":
        return await run_ray_leader(spec, environ)
    return await run_ray_worker(spec, environ)
