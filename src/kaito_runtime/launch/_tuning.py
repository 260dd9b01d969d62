"""Multi-process tuning: ``accelerate launch`` with one tuning process per GPU, on one node or more.

Runtime layer (launcher). Upstream KAITO runs ``accelerate launch --num_processes=<GPUs of the
SKU> --num_machines=1 --machine_rank=0 --gpu_ids=all fine_tuning.py``; this module builds the
same launch for ``python -m kaito_runtime.tuning`` (``-m``), adds ``--multi_gpu`` when more than
one process takes part (which also makes accelerate start several processes on a machine
without GPUs, where they train on CPU over gloo), and the machine rank and main process
address when the run spans several nodes. It runs accelerate as an owned child, and turns what
the tuning processes report (:mod:`~kaito_runtime.tuning._rank_results`) into the container's
exit code and termination message, which ``torchrun`` alone would reduce to "exit status 1".
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import structlog

from kaito_runtime.launch._children import OwnedProcess
from kaito_runtime.launch._errors import EXIT_CONFIG, EXIT_FAILED, LaunchError
from kaito_runtime.tuning import RANK_RESULTS_ENV, RankResult, merge_rank_results, read_rank_results

__all__ = (
    "DEFAULT_MAIN_PORT",
    "TUNING_MODULE",
    "TuningLaunch",
    "run_tuning_launch",
    "visible_gpus",
)

log = structlog.get_logger(__name__)

TUNING_MODULE = "kaito_runtime.tuning"
# torch.distributed's usual rendezvous port; upstream's tuning Services exposed it.
DEFAULT_MAIN_PORT = 29500


def visible_gpus() -> int:
    """The number of CUDA GPUs this process can use (imports torch)."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


@attrs.frozen
class TuningLaunch:
    """Where this node's tuning processes fit in the run, and how to start them."""

    processes_per_node: int
    nodes: int = 1
    node_rank: int = 0
    main_address: str | None = None
    main_port: int = DEFAULT_MAIN_PORT
    cpu: bool = False

    def __attrs_post_init__(self) -> None:
        if self.processes_per_node < 1:
            raise LaunchError(
                f"--processes-per-node={self.processes_per_node}: must be at least 1 (one "
                "process per GPU; 1 on a machine without GPUs)",
                EXIT_CONFIG,
            )
        if self.nodes < 1:
            raise LaunchError(f"--nodes={self.nodes}: must be at least 1", EXIT_CONFIG)
        if not 0 <= self.node_rank < self.nodes:
            raise LaunchError(
                f"--node-rank={self.node_rank}: must lie in 0..{self.nodes - 1} for --nodes="
                f"{self.nodes} (it defaults to $POD_INDEX, then $JOB_COMPLETION_INDEX)",
                EXIT_CONFIG,
            )
        if self.nodes > 1 and not self.main_address:
            raise LaunchError(
                f"--main-address is required with --nodes={self.nodes}: pass the address of "
                "node 0's pod, e.g. <workspace>-0.<workspace>-headless.<namespace>.svc.cluster."
                "local",
                EXIT_CONFIG,
            )
        if not 0 <= self.main_port <= 65535 or (self.main_port == 0 and self.nodes > 1):
            raise LaunchError(
                f"--main-port={self.main_port}: must be a TCP port (0, any free port, only on "
                "one node)",
                EXIT_CONFIG,
            )

    @property
    def world_size(self) -> int:
        """Tuning processes in the whole run."""
        return self.processes_per_node * self.nodes

    def accelerate_command(self, tuning_args: Sequence[str]) -> list[str]:
        """``python -m accelerate.commands.launch ... -m kaito_runtime.tuning TUNING_ARGS``."""
        command = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--num_processes", str(self.world_size),
            "--num_machines", str(self.nodes),
            "--machine_rank", str(self.node_rank),
            "--main_process_port", str(self.main_port),
            "--gpu_ids", "all",
            "--mixed_precision", "no",  # the TrainingArguments (bf16, fp16) decide
            "--dynamo_backend", "no",
        ]  # fmt: skip
        if self.world_size > 1:
            command.append("--multi_gpu")  # torchrun: one process per GPU (or per CPU slot)
        if self.nodes > 1:
            assert self.main_address is not None
            command += ["--main_process_ip", self.main_address]
        return [*command, "-m", TUNING_MODULE, *tuning_args]

    def environment(self, base: Mapping[str, str], results_dir: Path) -> dict[str, str]:
        """The environment of accelerate and the tuning processes."""
        env = dict(base)
        env[RANK_RESULTS_ENV] = str(results_dir)
        if self.cpu:
            env["CUDA_VISIBLE_DEVICES"] = ""  # the processes then train on CPU (gloo)
        return env


def check_tuning_args(tuning_args: Sequence[str]) -> None:
    """Parse ``tuning_args`` and read the tuning config they name, before starting anything.

    A configuration error is the same in every process; finding it here reports it once, with
    its exit code, instead of racing the processes that would each hit it.

    Raises:
        LaunchError: the tuning command would refuse them (argparse's complaint is quoted), or
            its config is invalid (the tuning command's own message).
    """
    from kaito_runtime.tuning import ConfigError, build_parser, load_run_config

    complaints = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaints), contextlib.redirect_stdout(complaints):
            parsed = build_parser().parse_args(list(tuning_args))
    except SystemExit as exc:
        if exc.code in (0, None):  # --help
            raise LaunchError(complaints.getvalue().strip(), 0) from None
        lines = [line for line in complaints.getvalue().splitlines() if line.strip()]
        reason = lines[-1] if lines else "refused"
        raise LaunchError(
            f"the tuning arguments after '--' are invalid: {reason}", EXIT_CONFIG
        ) from None
    try:
        load_run_config(parsed)
    except ConfigError as err:
        raise LaunchError(str(err), EXIT_CONFIG) from None


def _describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (SIGKILL often means the container ran out of memory)" if code == -9 else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


def outcome(results: Sequence[RankResult], launcher_code: int) -> tuple[int, str]:
    """The exit code and message of the whole launch, from the processes' reports."""
    merged = merge_rank_results(results, launcher_code)
    if merged is not None:
        failed_elsewhere = merged.exit_code != 0 and merged.rank != 0
        prefix = f"tuning process {merged.rank}: " if failed_elsewhere else ""
        return merged.exit_code, prefix + merged.message
    if launcher_code == 0:
        return 0, "tuning completed (no process reported a summary)"
    return (
        EXIT_FAILED,
        f"accelerate launch {_describe_exit(launcher_code)} before the tuning processes "
        "reported an outcome; see the container log (rendezvous with the main node, "
        "out of memory)",
    )


async def run_tuning_launch(
    launch: TuningLaunch,
    tuning_args: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    stop_grace: float = 30.0,
) -> tuple[int, str]:
    """Run the tuning processes through accelerate; return the exit code and the message.

    Cancellation (the launcher got SIGTERM) stops accelerate, which stops the processes.
    """
    results_dir = Path(tempfile.mkdtemp(prefix="kaito-tuning-ranks-"))
    command = launch.accelerate_command(tuning_args)
    env = launch.environment(os.environ if environ is None else environ, results_dir)
    log.info(
        "tuning_launch",
        processes=launch.world_size,
        processes_per_node=launch.processes_per_node,
        nodes=launch.nodes,
        node_rank=launch.node_rank,
        main_address=launch.main_address,
        device="cpu" if launch.cpu else "auto",
    )
    try:
        child = await OwnedProcess.start("accelerate", command, env=env)
        try:
            code = await child.wait()
        finally:
            await child.stop(stop_grace)
        exit_code, message = outcome(read_rank_results(results_dir), code)
    finally:
        shutil.rmtree(results_dir, ignore_errors=True)
    log.info("tuning_launch_finished", exit_code=exit_code, accelerate_exit_code=code)
    return exit_code, message
