"""Tuning with two CPU processes (gloo) through the launcher, against one process.

``python -m kaito_runtime.launch tuning`` starts ``accelerate launch -m kaito_runtime.tuning``
as a pod would (one process per GPU; two CPU processes here), on one node and on two "nodes"
rendezvousing over loopback. With the same global batch (one process x 4 rows, two x 2 rows)
and the same seed, the processes see the same rows per step, so the runs must agree: losses per
step, the token total, and the adapter (same keys and shapes, weights equal to float32
rounding), which loads with PEFT and generates exactly like the one-process adapter. Only rank 0
serves ``/progress``, writes checkpoints' markers, the adapter and the completion marker.
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
from structlog.testing import capture_logs

from kaito_runtime.tuning import _cli as cli
from kaito_runtime.tuning._checkpoints import COMPLETE_MARKER
from kaito_runtime.tuning._outputs import ADAPTER_FILES, COMPLETION_FILE, METADATA_FILE
from kaito_runtime.tuning._progress import PROGRESS_FILE
from tests.runtime.tuning.helpers import chat_rows, write_config, write_parquet
from tests.runtime.tuning.processes import events, spawn

STEPS = 4
GLOBAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.frozen
class Run:
    """A finished tuning run: exit code, its events, output directory, termination message."""

    code: int
    events: list[dict[str, Any]]
    out: Path
    termination: str

    def losses(self) -> list[float]:
        return [
            e["loss"]
            for e in self.events
            if e["event"] == "tuning_progress" and e.get("phase") == "training" and "loss" in e
        ]

    def metadata(self) -> dict[str, Any]:
        return dict(json.loads((self.out / METADATA_FILE).read_text()))


@attrs.frozen
class Workdir:
    root: Path
    data: Path
    model: Path

    def tuning_args(self, out: Path, per_process_batch: int, **training: Any) -> list[str]:
        config = write_config(
            out.parent / f"{out.name}-config.yaml",
            max_steps=STEPS,
            per_device_train_batch_size=per_process_batch,
            **training,
        )
        return [
            "--config", str(config),
            "--data-dir", str(self.data),
            "--output-dir", str(out),
            "--model", str(self.model),
        ]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Workdir:
    root = tmp_path_factory.mktemp("multi-process")
    write_parquet(root / "data" / "train.parquet", chat_rows(64))
    return Workdir(root=root, data=root / "data", model=tiny_model)


def _finish(proc: subprocess.Popen[str], out: Path, termination: Path) -> Run:
    assert proc.stderr is not None
    seen = list(events(proc.stderr))
    code = proc.wait(timeout=300)
    text = termination.read_text() if termination.exists() else ""
    return Run(code=code, events=seen, out=out, termination=text)


def _launch(workdir: Workdir, name: str, launcher: list[str], tuning: list[str]) -> Any:
    termination = workdir.root / f"{name}-termination"
    proc = spawn(
        "kaito_runtime.launch",
        ["tuning", "--cpu", *launcher, "--", *tuning],
        KAITO_TERMINATION_LOG=str(termination),
        GLOO_SOCKET_IFNAME="lo",  # collectives over loopback only
    )
    return proc, termination


def _in_process(workdir: Workdir, out: Path) -> Run:
    """The one-process reference, run in this process (saves a second import of the ML stack)."""
    termination = workdir.root / "one-termination"
    args = [*workdir.tuning_args(out, GLOBAL_BATCH), "--metrics-port", "0"]
    with pytest.MonkeyPatch.context() as patch, capture_logs() as logs:
        patch.setenv("KAITO_TERMINATION_LOG", str(termination))
        patch.setattr(cli, "configure_logging", lambda: None)  # keep capture_logs in place
        code = cli.main(args)
    return Run(code=code, events=logs, out=out, termination=termination.read_text())


@attrs.frozen
class Runs:
    one: Run
    two: Run
    nodes: tuple[Run, Run]
    progress_seen: dict[str, Any]


@pytest.fixture(scope="module")
def runs(workdir: Workdir) -> Iterator[Runs]:
    """One process (batch 4), two processes on one node and one process on each of two nodes
    (batch 2 each), run side by side."""
    root = workdir.root
    port = _free_port()
    two_args = workdir.tuning_args(root / "two", GLOBAL_BATCH // 2, save_steps=2)
    two_args += ["--metrics-port", str(port), "--checkpoint-dir", str(root / "two" / "ckpt")]
    two, two_term = _launch(
        workdir, "two", ["--processes-per-node", "2", "--main-port", "0"], two_args
    )
    # Two pods: each its own output directory (an emptyDir), node 0 at a loopback address.
    main = ["--nodes", "2", "--main-address", "127.0.0.1", "--main-port", str(_free_port())]
    # Node 0's volume holds a checkpoint from an earlier attempt that node 1 cannot see.
    earlier = root / "node0" / "ckpt" / "checkpoint-2"
    earlier.mkdir(parents=True)
    (earlier / "trainer_state.json").write_text("{}")
    (earlier / COMPLETE_MARKER).write_text("2\n")
    nodes = []
    for rank in (0, 1):
        out = root / f"node{rank}"
        args = workdir.tuning_args(out, GLOBAL_BATCH // 2, save_steps=2)
        args += ["--metrics-port", "0", "--checkpoint-dir", str(out / "ckpt")]
        launcher = [*main, "--node-rank", str(rank), "--processes-per-node", "1"]
        nodes.append((*_launch(workdir, f"node{rank}", launcher, args), out))
    procs = [two, *(proc for proc, _, _ in nodes)]
    try:
        with ThreadPoolExecutor(len(nodes)) as pool:
            node_runs = [pool.submit(_finish, proc, out, term) for proc, term, out in nodes]
            with ThreadPoolExecutor(1) as reader:
                # Read rank 0's /progress once training has begun (its first training event).
                two_run = reader.submit(
                    _read_progress_then_finish, two, root / "two", two_term, port
                )
                one = _in_process(workdir, root / "one")
                two_finished, progress = two_run.result(timeout=300)
            yield Runs(
                one=one,
                two=two_finished,
                nodes=(node_runs[0].result(timeout=300), node_runs[1].result(timeout=300)),
                progress_seen=progress,
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _read_progress_then_finish(
    proc: subprocess.Popen[str], out: Path, termination: Path, port: int
) -> tuple[Run, dict[str, Any]]:
    assert proc.stderr is not None
    head: list[dict[str, Any]] = []
    progress: dict[str, Any] = {}
    for event in events(proc.stderr):
        head.append(event)
        if event["event"] == "tuning_progress" and event.get("phase") == "training":
            url = f"http://127.0.0.1:{port}/progress"
            with urllib.request.urlopen(url, timeout=10) as response:
                progress = json.loads(response.read())
            break
    rest = _finish(proc, out, termination)
    return attrs.evolve(rest, events=head + rest.events), progress


def _by_rank(run: Run, name: str) -> list[Any]:
    return [e.get("rank") for e in run.events if e["event"] == name]


def test_two_processes_report_once_from_rank_zero(runs: Runs) -> None:
    one, two = runs.one, runs.two
    assert one.code == 0, one.termination
    assert two.code == 0, [e for e in two.events if e.get("level") == "error"]
    assert two.termination.startswith("tuning completed: lora adapter for ")
    assert f"after {STEPS} steps on 2 processes" in two.termination
    # Both processes trained (each loaded the dataset), one published.
    assert sorted(_by_rank(two, "dataset_loaded")) == [0, 1]
    assert _by_rank(two, "progress_server_started") == [0]
    assert _by_rank(two, "tuning_completed") == [0]
    assert {e.get("rank") for e in two.events if e["event"] == "tuning_progress"} == {0}
    assert runs.progress_seen["phase"] == "training"
    assert runs.progress_seen["processes"] == 2
    final = json.loads((two.out / PROGRESS_FILE).read_text())
    assert (final["phase"], final["step"], final["processes"]) == ("completed", STEPS, 2)
    assert (two.out / COMPLETION_FILE).read_text().startswith("Fine-Tuning completed at ")
    assert two.metadata()["processes"] == 2


def test_checkpoints_hold_every_rank_before_they_are_marked(runs: Runs) -> None:
    checkpoints = runs.two.out / "ckpt"
    assert _by_rank(runs.two, "checkpoint_saved") == [0, 0]
    for step in (2, 4):
        checkpoint = checkpoints / f"checkpoint-{step}"
        assert (checkpoint / COMPLETE_MARKER).read_text() == f"{step}\n"
        assert (checkpoint / "rng_state_0.pth").is_file()
        assert (checkpoint / "rng_state_1.pth").is_file()


def test_two_processes_train_what_one_process_trains(runs: Runs) -> None:
    one, two = runs.one, runs.two
    assert len(one.losses()) == len(two.losses()) == STEPS
    assert two.losses() == pytest.approx(one.losses(), rel=1e-4)
    assert 0 < two.losses()[-1] < two.losses()[0]
    # Tokens per second and the token total count both processes' tokens.
    assert two.metadata()["train_tokens"] == one.metadata()["train_tokens"] > 0
    assert two.metadata()["steps"] == one.metadata()["steps"] == STEPS


def _adapter(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return dict(load_file(str(directory / "adapter_model.safetensors")))


def test_the_adapters_agree_load_and_generate_alike(runs: Runs, tiny_model: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    one, two = _adapter(runs.one.out), _adapter(runs.two.out)
    assert sorted(one) == sorted(two)
    for key, weight in one.items():
        assert two[key].shape == weight.shape, key
        torch.testing.assert_close(two[key], weight, rtol=1e-3, atol=1e-5)
    assert any(w.abs().max().item() > 1e-3 for k, w in one.items() if "lora_B" in k)
    for name in ADAPTER_FILES:
        assert (runs.two.out / name).is_file()
    configs = [
        json.loads((r.out / "adapter_config.json").read_text()) for r in (runs.one, runs.two)
    ]
    for config in configs:  # PEFT keeps the modules in a set: the order is arbitrary
        config["target_modules"] = sorted(config["target_modules"])
    assert configs[0] == configs[1]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": "what does the operator do"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    outputs = []
    for out in (runs.one.out, runs.two.out):
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        tuned: Any = PeftModel.from_pretrained(base, out)
        with torch.no_grad():
            logits = tuned(**prompt).logits
            tokens = tuned.generate(**prompt, max_new_tokens=8, do_sample=False)
        outputs.append((logits, tokens))
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=1e-4, atol=1e-4)
    assert outputs[1][1].tolist() == outputs[0][1].tolist()


def test_two_nodes_rendezvous_and_node_zero_writes_the_adapter(runs: Runs) -> None:
    import torch

    node0, node1 = runs.nodes
    assert node0.code == 0, [e for e in node0.events if e.get("level") == "error"]
    assert node1.code == 0, [e for e in node1.events if e.get("level") == "error"]
    assert f"after {STEPS} steps on 2 processes" in node0.termination
    assert node1.termination == "tuning process 1 of 2 finished"
    assert _by_rank(node0, "dataset_loaded") == [0]
    assert _by_rank(node1, "dataset_loaded") == [1]
    # Rank 0 chose node 0's checkpoint, rank 1 could not see it: both started from step 0.
    assert _by_rank(node0, "checkpoint_not_shared") == [0]
    assert not [e for e in node0.events if e["event"] == "training_resumed"]
    assert node0.metadata()["resumed_from_step"] == 0
    assert node0.losses() == pytest.approx(runs.one.losses(), rel=1e-4)
    one, first = _adapter(runs.one.out), _adapter(node0.out)
    assert sorted(one) == sorted(first)
    for key, weight in one.items():
        torch.testing.assert_close(first[key], weight, rtol=1e-3, atol=1e-5)
    # Node 1's pod has nothing to push, and its partial checkpoints are never marked complete.
    assert not [p.name for p in node1.out.iterdir() if p.name != "ckpt"]
    assert (node0.out / COMPLETION_FILE).is_file()
    saved = node0.out / "ckpt" / "checkpoint-2"
    assert (saved / COMPLETE_MARKER).is_file()
    assert json.loads((saved / "trainer_state.json").read_text())["global_step"] == 2
    partial = node1.out / "ckpt" / "checkpoint-2"
    assert (partial / "rng_state_1.pth").is_file()
    assert not (partial / COMPLETE_MARKER).exists()


def test_an_actionable_error_keeps_its_exit_code_through_the_launcher(
    workdir: Workdir, tmp_path: Path
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("training_config:\n  Bogus: {}\n")
    args = ["--config", str(config), "--data-dir", str(workdir.data)]
    args += ["--output-dir", str(tmp_path / "out"), "--model", str(workdir.model)]
    proc, termination = _launch(
        workdir, "bad", ["--processes-per-node", "2", "--main-port", "0"], args
    )
    run = _finish(proc, tmp_path / "out", termination)
    assert run.code == 2  # ConfigError, not torchrun's "exit status 1"
    assert "Bogus" in run.termination
    assert not run.termination.startswith("tuning process 1:")


def test_tuning_arguments_are_checked_before_anything_starts(
    workdir: Workdir, tmp_path: Path
) -> None:
    proc, termination = _launch(
        workdir, "flags", ["--processes-per-node", "2"], ["--method", "full"]
    )
    run = _finish(proc, tmp_path, termination)
    assert run.code == 2
    assert "the tuning arguments after '--' are invalid" in run.termination
    assert "--method" in run.termination
    assert not [e for e in run.events if e["event"] == "child_started"]
