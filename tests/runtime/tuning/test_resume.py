"""A tuning process killed with SIGKILL resumes from its last complete checkpoint, not step 0."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from kaito_runtime.tuning._checkpoints import COMPLETE_MARKER
from kaito_runtime.tuning._outputs import METADATA_FILE
from tests.runtime.tuning.helpers import chat_rows, write_config, write_parquet
from tests.runtime.tuning.processes import events, spawn

MAX_STEPS = 30
SAVE_STEPS = 3


def test_a_killed_run_resumes_from_the_newest_complete_checkpoint(
    tmp_path: Path, tiny_model: Path
) -> None:
    write_parquet(tmp_path / "data" / "train.parquet", chat_rows(64))
    config = write_config(
        tmp_path / "config.yaml",
        max_steps=MAX_STEPS,
        save_steps=SAVE_STEPS,
        per_device_train_batch_size=2,
    )
    checkpoints = tmp_path / "volume" / "checkpoints"
    args = [
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "data"),
        "--output-dir",
        str(tmp_path / "out"),
        "--model",
        str(tiny_model),
        "--checkpoint-dir",
        str(checkpoints),
        "--metrics-port",
        "0",
    ]
    env = {"KAITO_TERMINATION_LOG": str(tmp_path / "termination-log")}

    first = spawn("kaito_runtime.tuning", args, **env)
    assert first.stderr is not None
    saved_step = None
    for event in events(first.stderr):
        if event["event"] == "checkpoint_saved":
            first.send_signal(signal.SIGKILL)  # mid-run, right after a checkpoint completed
            saved_step = int(event["step"])
            break
    first.wait(timeout=60)
    assert saved_step == SAVE_STEPS, "the first run never reported a checkpoint"
    assert first.returncode == -signal.SIGKILL, "the first run finished before it was killed"

    # A checkpoint the kill interrupted while it was being written: newer, but unmarked.
    partial = checkpoints / f"checkpoint-{saved_step + 100}"
    shutil.copytree(checkpoints / f"checkpoint-{saved_step}", partial)
    (partial / COMPLETE_MARKER).unlink()

    second = spawn("kaito_runtime.tuning", args, **env)
    assert second.stderr is not None
    seen = list(events(second.stderr))
    assert second.wait(timeout=300) == 0, [e for e in seen if e.get("level") == "error"]

    removed = [e for e in seen if e["event"] == "checkpoint_incomplete_removed"]
    assert [e["step"] for e in removed] == [saved_step + 100]
    resumed = [e for e in seen if e["event"] == "training_resumed"]
    assert len(resumed) == 1
    resumed_step = int(resumed[0]["step"])
    assert resumed_step >= saved_step
    assert resumed_step % SAVE_STEPS == 0
    trained = [e["step"] for e in seen if e["event"] == "tuning_progress" and "loss" in e]
    assert trained[0] == resumed_step + 1, "the second run started over instead of resuming"
    assert trained[-1] == MAX_STEPS
    metadata = json.loads((tmp_path / "out" / METADATA_FILE).read_text())
    assert metadata["resumed_from_step"] == resumed_step
    assert metadata["steps"] == MAX_STEPS
