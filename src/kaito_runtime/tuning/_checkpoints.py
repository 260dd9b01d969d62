"""Training checkpoints that survive a pod restart: mark complete ones, resume from the newest.

Runtime layer (tuning Job). The Trainer writes ``checkpoint-<step>`` directories; a checkpoint
counts only once :func:`mark_complete` has written its marker, after the Trainer finished
writing it. A pod killed mid-save leaves an unmarked directory, which the next start ignores
and removes, resuming from the newest marked one instead of from step 0.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import structlog

__all__ = (
    "COMPLETE_MARKER",
    "discard_checkpoints",
    "is_complete",
    "latest_complete_checkpoint",
    "mark_complete",
    "remove_incomplete_checkpoints",
)

log = structlog.get_logger(__name__)

COMPLETE_MARKER = ".kaito-checkpoint-complete"
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _CHECKPOINT.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def is_complete(path: Path) -> bool:
    """True when ``path`` is a checkpoint the Trainer finished writing (marker and state)."""
    return (path / COMPLETE_MARKER).is_file() and (path / TRAINER_STATE).is_file()


def mark_complete(checkpoint: Path, step: int) -> None:
    """Record that ``checkpoint`` is fully written (its files are flushed to disk first)."""
    for path in checkpoint.iterdir():
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    marker = checkpoint / COMPLETE_MARKER
    tmp = marker.with_suffix(".tmp")
    with tmp.open("w") as fh:
        fh.write(f"{step}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, marker)


def latest_complete_checkpoint(directory: Path) -> Path | None:
    """Return the newest complete checkpoint under ``directory``, or None."""
    complete = [path for _, path in _checkpoints(directory) if is_complete(path)]
    return complete[-1] if complete else None


def remove_incomplete_checkpoints(directory: Path) -> list[Path]:
    """Delete checkpoints without a completion marker (left by a kill mid-save); return them."""
    removed = []
    for step, path in _checkpoints(directory):
        if not is_complete(path):
            log.warning("checkpoint_incomplete_removed", path=str(path), step=step)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def discard_checkpoints(directory: Path) -> list[Path]:
    """Delete every checkpoint under ``directory`` (a fresh run must not save into old ones)."""
    removed = [path for _, path in _checkpoints(directory)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
