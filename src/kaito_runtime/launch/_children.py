"""Child processes the launcher owns: started in their own process group, stopped by PID.

Runtime layer (launcher). Each child (``ray start --block``, ``accelerate launch``, the inference
server) runs as the leader of a new process group, so everything it starts can be found again
(``/proc``, by process group) and stopped by PID, even processes it left behind when it died.
Stopping is SIGTERM to the child, a grace period, then SIGKILL to whatever of its group is
left. As the container's PID 1 the launcher also inherits orphans; the ones from its children's
groups are reaped here so they do not linger as zombies.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.abc
import structlog

__all__ = ("OwnedProcess", "group_members")

log = structlog.get_logger(__name__)

# How often a stopping process group is looked at again (there is no event for "group empty").
_POLL_SECONDS = 0.1


def group_members(pgid: int) -> dict[int, str]:
    """Return ``{pid: state}`` of the processes in process group ``pgid`` (Linux ``/proc``)."""
    members: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            members[int(entry.name)] = fields[0]
    return members


def _signal_pid(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _reap(pid: int) -> None:
    """Collect an exited orphan that was handed to this process (as PID 1); ignore others."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class OwnedProcess:
    """A child started by :meth:`start`; :meth:`stop` ends it and everything it started."""

    def __init__(self, name: str, process: anyio.abc.Process) -> None:
        self.name = name
        self._process = process

    @classmethod
    async def start(
        cls, name: str, command: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> OwnedProcess:
        """Start ``command`` with inherited stdout/stderr, as the leader of a new process group."""
        process = await anyio.open_process(
            list(command),
            stdin=None,
            stdout=None,
            stderr=None,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        log.info("child_started", child=name, pid=process.pid, command=shlex.join(command))
        return cls(name, process)

    @property
    def pid(self) -> int:
        """The child's PID (also its process group ID)."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited, else None."""
        return self._process.returncode

    async def wait(self) -> int:
        """Wait for the child to exit; return its exit status (negative: killed by a signal)."""
        return await self._process.wait()

    async def stop(self, grace: float) -> int:
        """Stop the child and its process group; return the child's exit status.

        SIGTERM goes to the child, which gets ``grace`` seconds to stop its own processes; then
        every process left in its group is sent SIGTERM and, after a short wait, SIGKILL. Safe to
        call when the child has already exited (its leftovers are still cleaned up). Shielded
        from cancellation: stopping always completes.
        """
        with anyio.CancelScope(shield=True):
            if self._process.returncode is None:
                log.info("child_stopping", child=self.name, pid=self.pid)
                _signal_pid(self.pid, signal.SIGTERM)
                with anyio.move_on_after(grace):
                    await self._process.wait()
            await self._clean_group(min(grace, 5.0))
            code = await self._process.wait()
        log.info("child_stopped", child=self.name, pid=self.pid, exit_code=code)
        return code

    async def _clean_group(self, grace: float) -> None:
        pgid = self.pid
        for signum in (signal.SIGTERM, signal.SIGKILL):
            alive = self._living_members(pgid)
            if not alive:
                return
            log.info(
                "child_group_leftovers",
                child=self.name,
                pids=sorted(alive),
                signal=signal.Signals(signum).name,
            )
            for pid in alive:
                _signal_pid(pid, signum)
            for _ in range(max(1, round(grace / _POLL_SECONDS))):
                await anyio.sleep(_POLL_SECONDS)
                if not self._living_members(pgid):
                    return

    def _living_members(self, pgid: int) -> list[int]:
        alive = []
        for pid, state in group_members(pgid).items():
            if pid == self.pid and self._process.returncode is not None:
                continue
            if state == "Z":
                if pid != self.pid:
                    _reap(pid)
                continue
            alive.append(pid)
        return alive
