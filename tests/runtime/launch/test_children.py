"""Owned child processes: stopping one stops everything it started, by PID, escalating to
SIGKILL; a child that died on its own has its leftovers cleaned up too."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import psutil
import pytest

from kaito_runtime.launch._children import OwnedProcess, group_members

pytestmark = pytest.mark.anyio


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


async def _started(script: str, fifo: Path) -> tuple[OwnedProcess, list[int]]:
    """Start ``sh -c script``; it writes its sleepers' PIDs to ``fifo`` once they run."""
    os.mkfifo(fifo)
    child = await OwnedProcess.start("sh", ["sh", "-c", script.replace("FIFO", str(fifo))])
    with anyio.fail_after(30):
        text = await anyio.to_thread.run_sync(fifo.read_text)  # blocks until sh writes
    return child, [int(pid) for pid in text.split()]


async def test_stop_terminates_the_child_and_its_whole_group(tmp_path: Path) -> None:
    script = "sleep 1000 & a=$!; sleep 1000 & echo $a $! > FIFO; wait"
    child, sleepers = await _started(script, tmp_path / "fifo")
    code = await child.stop(grace=5)
    assert code == -signal.SIGTERM
    assert _gone(sleepers)
    assert [pid for pid, state in group_members(child.pid).items() if state != "Z"] == []


async def test_processes_ignoring_sigterm_are_killed(tmp_path: Path) -> None:
    script = "trap '' TERM; sleep 1000 & a=$!; sleep 1000 & echo $a $! > FIFO; wait"
    child, sleepers = await _started(script, tmp_path / "fifo")
    code = await child.stop(grace=0.2)
    assert code == -signal.SIGKILL
    assert _gone(sleepers)


async def test_leftovers_of_a_child_that_exited_are_cleaned_up(tmp_path: Path) -> None:
    script = "sleep 1000 & a=$!; sleep 1000 & echo $a $! > FIFO; wait"
    child, sleepers = await _started(script, tmp_path / "fifo")
    os.kill(child.pid, signal.SIGKILL)  # the child dies; its sleepers live on in its group
    assert await child.wait() == -signal.SIGKILL
    assert not _gone(sleepers)
    assert await child.stop(grace=5) == -signal.SIGKILL
    assert _gone(sleepers)
