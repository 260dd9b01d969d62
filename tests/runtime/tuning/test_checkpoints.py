"""Checkpoint completeness: only marked checkpoints are resumed from; partial ones are removed."""

from __future__ import annotations

from pathlib import Path

from kaito_runtime.tuning._checkpoints import (
    COMPLETE_MARKER,
    discard_checkpoints,
    is_complete,
    latest_complete_checkpoint,
    mark_complete,
    remove_incomplete_checkpoints,
)


def _checkpoint(root: Path, step: int, *, complete: bool) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if complete:
        mark_complete(path, step)
    return path


def test_the_newest_complete_checkpoint_wins_over_a_newer_partial_one(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 5, complete=True)
    ten = _checkpoint(tmp_path, 10, complete=True)
    partial = _checkpoint(tmp_path, 15, complete=False)
    (tmp_path / "checkpoint-20").mkdir()  # killed before anything was written
    assert latest_complete_checkpoint(tmp_path) == ten
    removed = remove_incomplete_checkpoints(tmp_path)
    assert sorted(p.name for p in removed) == ["checkpoint-15", "checkpoint-20"]
    assert not partial.exists()
    assert latest_complete_checkpoint(tmp_path) == ten
    assert (ten / COMPLETE_MARKER).read_text() == "10\n"


def test_numeric_order_not_name_order(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 9, complete=True)
    hundred = _checkpoint(tmp_path, 100, complete=True)
    assert latest_complete_checkpoint(tmp_path) == hundred


def test_no_directory_or_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    assert latest_complete_checkpoint(tmp_path / "none") is None
    assert latest_complete_checkpoint(tmp_path) is None
    assert remove_incomplete_checkpoints(tmp_path / "none") == []


def test_discarding_removes_every_checkpoint_and_nothing_else(tmp_path: Path) -> None:
    kept = tmp_path / ".datasets-cache"
    kept.mkdir()
    five = _checkpoint(tmp_path, 5, complete=True)
    assert is_complete(five)
    _checkpoint(tmp_path, 7, complete=False)
    removed = discard_checkpoints(tmp_path)
    assert [p.name for p in removed] == ["checkpoint-5", "checkpoint-7"]
    assert [p.name for p in tmp_path.iterdir()] == [".datasets-cache"]
