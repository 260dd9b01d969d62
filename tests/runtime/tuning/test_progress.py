"""Progress: the JSON file, the structured events, the HTTP endpoints, and the callback maths."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from transformers import TrainerControl, TrainerState, TrainingArguments

from kaito_runtime.tuning._callbacks import ProgressCallback
from kaito_runtime.tuning._progress import PROGRESS_FILE, ProgressServer, ProgressTracker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_updates_land_in_the_file_the_log_and_the_endpoints(tmp_path: Path) -> None:
    tracker = ProgressTracker(tmp_path, wall_clock=FakeClock(1_764_000_000.0))
    server = ProgressServer(tracker, host="127.0.0.1", port=0)
    try:
        with capture_logs() as logs:
            tracker.update(phase="training", step=3, max_steps=10, loss=1.5, eta_seconds=7.0)
        tracker.flush()
        document = json.loads((tmp_path / PROGRESS_FILE).read_text())
        assert document == {
            "phase": "training",
            "step": 3,
            "max_steps": 10,
            "epoch": 0.0,
            "loss": 1.5,
            "tokens_per_second": None,
            "eta_seconds": 7.0,
            "updated_at": "2025-11-24T16:00:00Z",
            "message": None,
            "processes": 1,
        }
        assert logs[0]["event"] == "tuning_progress"
        assert logs[0]["step"] == 3
        assert "tokens_per_second" not in logs[0]
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/progress") as resp:
            assert json.loads(resp.read()) == document
        with urllib.request.urlopen(f"{base}/metrics") as resp:
            metrics = resp.read().decode()
        assert "kaito_tuning_step 3.0" in metrics
        assert "kaito_tuning_loss 1.5" in metrics
        assert 'kaito_tuning_phase{phase="training"} 1.0' in metrics
        assert 'kaito_tuning_phase{phase="loading"} 0.0' in metrics
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/nope")
        assert err.value.code == 404
    finally:
        server.close()
        tracker.close()


def test_final_phases_are_on_disk_when_update_returns(tmp_path: Path) -> None:
    tracker = ProgressTracker(tmp_path)
    for step in range(1, 50):
        tracker.update(phase="training", step=step, max_steps=50)
    tracker.update(phase="completed", step=50)
    document = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert (document["phase"], document["step"]) == ("completed", 50)
    tracker.close()


def test_an_unwritable_output_only_logs(tmp_path: Path) -> None:
    tracker = ProgressTracker(tmp_path / "missing")
    with capture_logs() as logs:
        tracker.update(step=1)
        tracker.close()
    assert any(e["event"] == "progress_file_unwritable" for e in logs)


def test_the_callback_computes_tokens_per_second_and_eta(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = ProgressTracker(tmp_path)
    callback = ProgressCallback(tracker, clock=clock)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    control = TrainerControl()
    state = TrainerState(global_step=4, max_steps=14)  # resumed at step 4
    callback.on_train_begin(args, state, control)
    callback.on_step_begin(args, state, control)
    clock.now += 2.0
    state.global_step, state.epoch = 5, 0.5
    callback.on_log(args, state, control, logs={"loss": 2.0, "num_tokens": 400.0})
    first = tracker.current
    assert (first.step, first.max_steps, first.loss) == (5, 14, 2.0)
    assert first.tokens_per_second == 200.0
    assert first.eta_seconds == 18.0  # 9 steps left at 2 s per step of this run
    clock.now += 1.0
    state.global_step = 6
    callback.on_log(args, state, control, logs={"loss": 1.0, "num_tokens": 1000.0})
    assert tracker.current.tokens_per_second == 600.0
    assert tracker.current.eta_seconds == 12.0
    callback.on_log(args, state, control, logs={"train_runtime": 3.0})  # summary: ignored
    assert tracker.current.loss == 1.0
    assert callback.total_tokens == 1000
    tracker.close()
