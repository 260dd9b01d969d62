"""The tuning launcher's contract: the accelerate command it renders, its refusals, and how the
processes' outcomes become the container's exit code and message. No process is started here;
``tests/runtime/tuning/test_multi_process.py`` runs the launcher for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kaito_runtime.launch import LaunchError
from kaito_runtime.launch._pod import pod_index
from kaito_runtime.launch._tuning import TuningLaunch, check_tuning_args, outcome
from kaito_runtime.tuning import ConfigError
from kaito_runtime.tuning._distributed import Ranks
from kaito_runtime.tuning._rank_results import (
    RANK_RESULTS_ENV,
    RankResult,
    merge_rank_results,
    read_rank_results,
    write_rank_result,
)

TUNING = ["--config", "/mnt/config/training_config.yaml", "--output-dir", "/mnt/results"]


def _flags(command: list[str]) -> dict[str, str]:
    """accelerate's ``--flag value`` pairs before ``-m`` (``--multi_gpu`` maps to "")."""
    head = command[3 : command.index("-m", 3)]
    flags: dict[str, str] = {}
    i = 0
    while i < len(head):
        if i + 1 < len(head) and not head[i + 1].startswith("--"):
            flags[head[i]] = head[i + 1]
            i += 2
        else:
            flags[head[i]] = ""
            i += 1
    return flags


def test_one_node_with_four_gpus_renders_upstreams_launch() -> None:
    command = TuningLaunch(processes_per_node=4).accelerate_command(TUNING)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[-len(TUNING) - 2 :] == ["-m", "kaito_runtime.tuning", *TUNING]
    assert _flags(command) == {
        "--num_processes": "4",
        "--num_machines": "1",
        "--machine_rank": "0",
        "--main_process_port": "29500",
        "--gpu_ids": "all",
        "--mixed_precision": "no",
        "--dynamo_backend": "no",
        "--multi_gpu": "",
    }


def test_one_process_needs_no_multi_gpu_launch() -> None:
    flags = _flags(TuningLaunch(processes_per_node=1).accelerate_command(TUNING))
    assert "--multi_gpu" not in flags
    assert flags["--num_processes"] == "1"


def test_two_nodes_count_every_process_and_meet_at_node_zero() -> None:
    launch = TuningLaunch(
        processes_per_node=8, nodes=2, node_rank=1, main_address="ws-0.ws-headless.ns.svc"
    )
    flags = _flags(launch.accelerate_command(TUNING))
    assert flags["--num_processes"] == "16"  # accelerate wants the total across machines
    assert flags["--num_machines"] == "2"
    assert flags["--machine_rank"] == "1"
    assert flags["--main_process_ip"] == "ws-0.ws-headless.ns.svc"


def test_cpu_hides_the_gpus_and_names_the_results_directory(tmp_path: Path) -> None:
    env = TuningLaunch(processes_per_node=2, cpu=True).environment({"PATH": "/bin"}, tmp_path)
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "", RANK_RESULTS_ENV: str(tmp_path)}
    assert "CUDA_VISIBLE_DEVICES" not in TuningLaunch(processes_per_node=2).environment(
        {}, tmp_path
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"processes_per_node": 0}, "--processes-per-node=0: must be", id="zero"),
        pytest.param({"nodes": 2, "node_rank": 2, "main_address": "x"}, "--node-rank=2", id="rank"),
        pytest.param({"nodes": 2}, "--main-address is required with --nodes=2", id="address"),
        pytest.param({"nodes": 2, "main_address": "x", "main_port": 0}, "--main-port=0", id="port"),
    ],
)
def test_impossible_launches_are_refused_with_the_fix(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(LaunchError) as err:
        TuningLaunch(**{"processes_per_node": 1, **kwargs})  # type: ignore[arg-type]
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_tuning_arguments_are_parsed_by_the_tuning_parser() -> None:
    check_tuning_args(["--method", "qlora", "--output-dir", "/mnt/results"])  # built-in template
    with pytest.raises(LaunchError) as err:
        check_tuning_args(["--method", "full"])
    assert "argument --method: invalid choice: 'full'" in str(err.value)


def test_the_tuning_config_is_read_once_before_any_process_starts(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as err:
        check_tuning_args(TUNING)  # no ConfigMap mounted here
    assert err.value.exit_code == 2
    assert "cannot read the tuning config '/mnt/config/training_config.yaml'" in str(err.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("training_config:\n  Bogus: {}\n")
    with pytest.raises(LaunchError) as err:
        check_tuning_args(["--config", str(bad)])
    assert (err.value.exit_code, "Bogus" in str(err.value)) == (2, True)


def test_the_pod_index_comes_from_the_statefulset_or_the_indexed_job() -> None:
    assert pod_index({}) is None
    assert pod_index({"POD_INDEX": "3"}) == 3
    assert pod_index({"JOB_COMPLETION_INDEX": "1"}) == 1
    with pytest.raises(LaunchError, match="POD_INDEX='x' is not a pod index"):
        pod_index({"POD_INDEX": "x"})


def test_ranks_come_from_torchrun_and_must_fit() -> None:
    assert Ranks.from_env({}) == Ranks(0, 0, 1)
    ranks = Ranks.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (ranks.rank, ranks.local_rank, ranks.distributed, ranks.is_main) == (3, 1, True, False)
    with pytest.raises(ConfigError, match="RANK=4 does not fit WORLD_SIZE=4"):
        Ranks.from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ConfigError, match="WORLD_SIZE='two' is not an integer"):
        Ranks.from_env({"WORLD_SIZE": "two"})


def test_results_round_trip_through_the_directory(tmp_path: Path) -> None:
    env = {RANK_RESULTS_ENV: str(tmp_path)}
    write_rank_result(RankResult(1, 3, "no rows"), env)
    write_rank_result(RankResult(0, 0, "done"), env)
    (tmp_path / "rank-9.json").write_text("{not json")
    assert read_rank_results(tmp_path) == [RankResult(0, 0, "done"), RankResult(1, 3, "no rows")]
    assert write_rank_result(RankResult(0, 0, "x"), {}) is None


@pytest.mark.parametrize(
    ("results", "launcher", "expected"),
    [
        pytest.param([(0, 0, "done"), (1, 0, "p1")], 0, (0, "done"), id="success"),
        pytest.param([(1, 0, "p1")], 0, (0, "p1"), id="other-node-success"),
        pytest.param(
            [(0, 1, "unexpected error: peer died"), (1, 4, "out of memory")],
            1,
            (4, "tuning process 1: out of memory"),
            id="actionable-wins",
        ),
        pytest.param([(0, 2, "bad key"), (1, 2, "bad key")], 1, (2, "bad key"), id="rank-order"),
        pytest.param([(0, 0, "done")], 1, None, id="launcher-failed-after"),
        pytest.param([], -9, None, id="nothing-reported"),
    ],
)
def test_the_outcome_of_the_run(
    results: list[tuple[int, int, str]],
    launcher: int,
    expected: tuple[int, str] | None,
) -> None:
    reported = [RankResult(*r) for r in results]
    code, message = outcome(reported, launcher)
    if expected is None:
        assert merge_rank_results(reported, launcher) is None
        assert code == 1
        assert message.startswith("accelerate launch ")
        if launcher == -9:
            assert "killed by SIGKILL" in message
            assert "out of memory" in message
    else:
        assert (code, message) == expected
