"""``python -m kaito_runtime.launch``: start the processes of multi-GPU and multi-node pods.

Runtime layer (launcher)::

    python -m kaito_runtime.launch tuning [--processes-per-node N|auto] [--nodes M]
        [--node-rank R] [--main-address HOST] [--main-port 29500] [--cpu] -- TUNING ARGS
    python -m kaito_runtime.launch ray --nodes N --leader-address HOST [--ray-port 6379]
        [--role auto|leader|worker] [--node-ip IP] [--join-timeout S]
        [--ray-start-args "ARGS"] -- SERVER COMMAND (leader)
    python -m kaito_runtime.launch health readiness|liveness --leader-address HOST
        [--ray-port 6379] [--server-port 5000] [--nodes N] [--role auto|leader|worker]

``tuning`` and ``ray`` own their children (stopped by PID on SIGTERM) and end with a one-line
termination message; a bad flag exits 2 before anything starts.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import anyio
import structlog

from kaito_runtime.adapters import write_termination_message
from kaito_runtime.launch._errors import EXIT_CONFIG, EXIT_TERMINATED, LaunchError
from kaito_runtime.launch._health import DEFAULT_SERVER_PORT, HealthCheck, check_health
from kaito_runtime.launch._pod import POD_INDEX_ENV, pod_index
from kaito_runtime.launch._ray_cluster import (
    DEFAULT_JOIN_TIMEOUT,
    RayClusterSpec,
    Role,
    child_environment,
    run_ray,
)
from kaito_runtime.launch._ray_nodes import DEFAULT_RAY_PORT
from kaito_runtime.launch._tuning import (
    DEFAULT_MAIN_PORT,
    TuningLaunch,
    check_tuning_args,
    run_tuning_launch,
    visible_gpus,
)
from kaito_runtime.logs import configure_logging

__all__ = ("build_parser", "main")

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (the command after ``--`` is split off before parsing)."""
    parser = argparse.ArgumentParser(
        prog="python -m kaito_runtime.launch",
        description="Start the processes of multi-GPU and multi-node KAITO pods.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    tuning = commands.add_parser(
        "tuning",
        help="run python -m kaito_runtime.tuning once per GPU through accelerate launch",
    )
    tuning.add_argument(
        "--processes-per-node",
        default="auto",
        help="tuning processes on this node: one per GPU ('auto': the visible GPUs, 1 without)",
    )
    tuning.add_argument("--nodes", type=int, default=1, help="nodes taking part (default 1)")
    tuning.add_argument(
        "--node-rank",
        type=int,
        default=None,
        help=f"this node's index (default ${POD_INDEX_ENV}, then $JOB_COMPLETION_INDEX, then 0)",
    )
    tuning.add_argument("--main-address", help="address of node 0 (required with --nodes > 1)")
    tuning.add_argument(
        "--main-port", type=int, default=DEFAULT_MAIN_PORT, help="rendezvous port on node 0"
    )
    tuning.add_argument("--cpu", action="store_true", help="train on CPUs even if GPUs are visible")

    ray = commands.add_parser("ray", help="run this pod's part of a multi-node Ray cluster")
    ray.add_argument("--nodes", type=int, required=True, help="pods (Ray nodes) in the cluster")
    ray.add_argument("--leader-address", required=True, help="address of pod 0 (the Ray head)")
    ray.add_argument("--ray-port", type=int, default=DEFAULT_RAY_PORT)
    ray.add_argument("--role", choices=("auto", "leader", "worker"), default="auto")
    ray.add_argument("--node-ip", help="this node's address for Ray (default: detected)")
    ray.add_argument(
        "--join-timeout",
        type=float,
        default=DEFAULT_JOIN_TIMEOUT,
        help="seconds to wait for every node (leader) or to join (worker)",
    )
    ray.add_argument(
        "--ray-start-args", default="", help="more `ray start` flags, as one shell-quoted string"
    )

    health = commands.add_parser("health", help="exec probe of a multi-node inference pod")
    health.add_argument("probe", choices=("liveness", "readiness"))
    health.add_argument("--leader-address", required=True)
    health.add_argument("--ray-port", type=int, default=DEFAULT_RAY_PORT)
    health.add_argument(
        "--server-port", "--vllm-port", type=int, default=DEFAULT_SERVER_PORT, dest="server_port"
    )
    health.add_argument("--nodes", type=int, default=None, help="liveness: nodes that must live")
    health.add_argument("--role", choices=("auto", "leader", "worker"), default="auto")
    health.add_argument("--timeout", type=float, default=5.0)
    return parser


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


def _role(flag: str) -> Role:
    if flag in ("leader", "worker"):
        return "leader" if flag == "leader" else "worker"
    index = pod_index()
    if index is None:
        raise LaunchError(
            f"--role auto needs ${POD_INDEX_ENV} (the pod's index; 0 is the leader); set it "
            "from the apps.kubernetes.io/pod-index label or pass --role leader|worker",
            EXIT_CONFIG,
        )
    return "leader" if index == 0 else "worker"


def _processes_per_node(flag: str, cpu: bool) -> int:
    if flag != "auto":
        try:
            return int(flag)
        except ValueError:
            raise LaunchError(
                f"--processes-per-node={flag!r}: pass a number or 'auto'", EXIT_CONFIG
            ) from None
    return 1 if cpu else max(1, visible_gpus())


def _tuning(args: argparse.Namespace, rest: list[str]) -> Callable[[], Awaitable[int]]:
    check_tuning_args(rest)
    index = pod_index() if args.node_rank is None else args.node_rank
    launch = TuningLaunch(
        processes_per_node=_processes_per_node(args.processes_per_node, args.cpu),
        nodes=args.nodes,
        node_rank=index or 0,
        main_address=args.main_address,
        main_port=args.main_port,
        cpu=args.cpu,
    )

    async def run() -> int:
        code, message = await run_tuning_launch(launch, rest)
        write_termination_message(message)
        return code

    return run


def _ray(args: argparse.Namespace, rest: list[str]) -> Callable[[], Awaitable[int]]:
    environ = child_environment()
    spec = RayClusterSpec(
        role=_role(args.role),
        nodes=args.nodes,
        leader_address=args.leader_address,
        ray_port=args.ray_port,
        node_ip=args.node_ip,
        join_timeout=args.join_timeout,
        ray_start_args=tuple(shlex.split(args.ray_start_args)),
        server_command=tuple(rest),
    )

    async def run() -> int:
        return await run_ray(spec, environ)

    return run


def _health(args: argparse.Namespace) -> int:
    is_leader = args.role == "leader" or (args.role == "auto" and pod_index() == 0)
    healthy, reason = check_health(
        HealthCheck(
            probe=args.probe,
            is_leader=is_leader,
            leader_address=args.leader_address,
            ray_port=args.ray_port,
            server_port=args.server_port,
            nodes=args.nodes,
            timeout=args.timeout,
        )
    )
    print(reason)
    return 0 if healthy else 1


def _fail(err: LaunchError) -> int:
    message = f"launch failed: {err}"
    log.error("launch_failed", error=str(err), exit_code=err.exit_code)
    print(message, file=sys.stderr)
    write_termination_message(message)
    return err.exit_code


async def _until_signal(body: Callable[[], Awaitable[int]]) -> int:
    """Run ``body``; SIGTERM or SIGINT cancel it (its children are stopped) and exit 143."""
    codes: list[int] = []
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
                async for signum in received:
                    log.info("launcher_stopping", signal=signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch_signals)
        try:
            codes.append(await body())
        except LaunchError as err:
            codes.append(_fail(err))
        tg.cancel_scope.cancel()
    return codes[0] if codes else EXIT_TERMINATED


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the subcommand, and return the exit status."""
    own, rest = _split(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    configure_logging()
    try:
        if args.command == "health":
            return _health(args)
        body = _tuning(args, rest) if args.command == "tuning" else _ray(args, rest)
        return anyio.run(_until_signal, body)
    except LaunchError as err:
        if err.exit_code == 0:  # --help of the tuning command
            print(err)
            return 0
        return _fail(err)
