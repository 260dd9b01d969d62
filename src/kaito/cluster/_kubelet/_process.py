"""A container's process on this machine: started in a session (process group) of its own, its
output pumped into the container log, stopped with SIGTERM to the whole tree and SIGKILL after the
grace period; nothing of it is left behind.

Under bubblewrap the tree lives in a PID namespace whose init is bubblewrap: when the container's
main process ends, the kernel kills whatever it left behind, and the namespace dies with the
kubelet. SIGTERM goes to every process of the group but bubblewrap itself (which would otherwise
end the namespace at once with SIGKILL).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import termios
from collections import deque
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from kaito.cluster._kubelet._clock import KubeletClock
from kaito.cluster._kubelet._sandbox import Launch

__all__ = ("ContainerProcess", "OutputListener", "OutputSink", "group_members")

OutputListener = MemoryObjectSendStream[tuple[str, bytes]]
"""Receives ``(stream, data)`` of a running container (``attach``)."""

OutputSink = Callable[[str, bytes], Awaitable[None]]
"""Where the pump sends ``(stream, data)``."""

_READ = 64 * 1024


def group_members(pgid: int) -> list[tuple[int, int, str]]:
    """``(pid, ppid, comm)`` of every live process in process group ``pgid`` (reads ``/proc``)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        close = data.rfind(b")")
        fields = data[close + 2 :].split()
        if len(fields) < 3 or fields[0] == b"Z":
            continue
        if int(fields[2]) == pgid:
            comm = data[data.find(b"(") + 1 : close].decode(errors="replace")
            members.append((int(entry), int(fields[1]), comm))
    return members


class ContainerProcess:
    """One run of a container: a process group, its output and its exit code."""

    def __init__(
        self,
        process: anyio.abc.Process,
        *,
        sandboxed: bool,
        master: int | None,
        scrollback: int = 0,
    ) -> None:
        self._process = process
        self._sandboxed = sandboxed
        self._master = master
        self._listeners: set[OutputListener] = set()
        self._scrollback_limit = scrollback
        self._scrollback: deque[tuple[str, bytes]] = deque()
        self._scrollback_size = 0
        self.exit_code: int | None = None
        self.pid = process.pid

    @classmethod
    async def start(
        cls, launch: Launch, *, stdin: bool, tty: bool, sandboxed: bool, scrollback: int = 0
    ) -> ContainerProcess:
        """Start ``launch`` in a session of its own (with a terminal when ``tty``); keep the
        last ``scrollback`` bytes of output for :meth:`listen` with ``replay``.

        Raises:
            OSError: the program cannot be executed.
        """
        if not tty:
            process = await anyio.open_process(
                list(launch.argv),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=launch.cwd,
                env=launch.env,
                start_new_session=True,
            )
            return cls(process, sandboxed=sandboxed, master=None, scrollback=scrollback)
        master, slave = os.openpty()
        os.set_blocking(master, False)
        setsid = shutil.which("setsid")
        argv = [setsid, "--ctty", *launch.argv] if setsid else list(launch.argv)
        try:
            process = await anyio.open_process(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=launch.cwd,
                env=launch.env,
                start_new_session=setsid is None,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(process, sandboxed=sandboxed, master=master, scrollback=scrollback)

    def listen(self, listener: OutputListener, *, replay: bool = False) -> Callable[[], None]:
        """Send output to ``listener`` from now on (with ``replay``, first what the scrollback
        kept); returns the function that stops it."""
        if replay:
            for item in self._scrollback:
                with contextlib.suppress(anyio.WouldBlock):
                    listener.send_nowait(item)
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def _keep(self, stream: str, data: bytes) -> None:
        if self._scrollback and self._scrollback[-1][0] == stream:
            _, previous = self._scrollback.pop()
            self._scrollback.append((stream, previous + data))
        else:
            self._scrollback.append((stream, data))
        self._scrollback_size += len(data)
        while self._scrollback_size > self._scrollback_limit:
            first_stream, first = self._scrollback.popleft()
            excess = self._scrollback_size - self._scrollback_limit
            if len(first) > excess:
                self._scrollback.appendleft((first_stream, first[excess:]))
                self._scrollback_size -= excess
            else:
                self._scrollback_size -= len(first)

    def _fan_out(self, stream: str, data: bytes) -> None:
        if self._scrollback_limit:
            self._keep(stream, data)
        for listener in list(self._listeners):
            try:
                listener.send_nowait((stream, data))
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._listeners.discard(listener)
                listener.close()

    async def pump(self, write: OutputSink) -> None:
        """Copy stdout and stderr (or the terminal) to ``write`` until they close."""
        async with anyio.create_task_group() as tg:
            if self._master is not None:
                tg.start_soon(self._pump_terminal, write)
            else:
                for stream, source in (
                    ("stdout", self._process.stdout),
                    ("stderr", self._process.stderr),
                ):
                    if source is not None:
                        tg.start_soon(self._pump_stream, stream, source, write)

    async def _pump_stream(
        self, stream: str, source: anyio.abc.ByteReceiveStream, write: OutputSink
    ) -> None:
        with contextlib.suppress(
            anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError
        ):
            while True:
                data = await source.receive(_READ)
                await write(stream, data)
                self._fan_out(stream, data)

    async def _pump_terminal(self, write: OutputSink) -> None:
        master = self._master
        assert master is not None
        while True:
            try:
                await anyio.wait_readable(master)
                data = os.read(master, _READ)
            except BlockingIOError:
                continue
            except anyio.ClosedResourceError:
                return
            except OSError as error:
                if error.errno in (errno.EIO, errno.EBADF):
                    return
                raise
            if not data:
                return
            await write("stdout", data)
            self._fan_out("stdout", data)

    async def send_stdin(self, data: bytes) -> None:
        """Write to the container's stdin (or terminal).

        Raises:
            anyio.BrokenResourceError: stdin is closed.
        """
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    await anyio.wait_writable(self._master)
                    continue
                view = view[written:]
            return
        if self._process.stdin is None:
            raise anyio.BrokenResourceError("the container was not started with stdin")
        await self._process.stdin.send(data)

    async def close_stdin(self) -> None:
        """Close stdin (``stdinOnce`` after the first attach ends)."""
        if self._process.stdin is not None:
            await self._process.stdin.aclose()

    def resize(self, width: int, height: int) -> None:
        """Set the terminal's size (no-op without a terminal)."""
        if self._master is not None:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        """Wait for the main process; its exit code (``128 + N`` when killed by signal N)."""
        code = await self._process.wait()
        self.exit_code = 128 - code if code < 0 else code
        return self.exit_code

    def members(self) -> list[int]:
        """PIDs of the container's processes still alive (bubblewrap's own included)."""
        return [pid for pid, _, _ in group_members(self.pid)]

    async def namespace_pid(self) -> int | None:
        """The host PID of the container's main process once the sandbox has executed it (its
        namespaces are complete then), to join them; ``None`` without a sandbox or once it ended.

        Right after the start the sandbox may still be setting up: this waits (up to a few
        seconds) for bubblewrap to hand over to the container's program.
        """
        if not self._sandboxed:
            return None
        with anyio.move_on_after(5):
            while not self.finished:
                members = group_members(self.pid)
                inits = {pid for pid, parent, comm in members if parent == self.pid}
                for pid, parent, comm in members:
                    if parent in inits and comm != "bwrap":
                        return pid
                await anyio.sleep(0.01)
        return None

    def signal_tree(self, sig: int) -> None:
        """Send ``sig`` to every process of the container (bubblewrap spared for SIGTERM)."""
        if sig == signal.SIGKILL or not self._sandboxed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            return
        spared = {self.pid}
        for pid, parent, comm in group_members(self.pid):
            if parent == self.pid and comm == "bwrap":
                spared.add(pid)
        for pid, _, _ in group_members(self.pid):
            if pid not in spared:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    @property
    def finished(self) -> bool:
        """Whether the main process has exited."""
        return self.exit_code is not None or self._process.returncode is not None

    async def stop(self, grace: float, clock: KubeletClock) -> int:
        """SIGTERM the tree, SIGKILL after ``grace`` seconds of ``clock``; return the exit code."""
        if not self.finished:
            self.signal_tree(signal.SIGTERM)
            async with anyio.create_task_group() as tg:

                async def deadline() -> None:
                    await clock.sleep(grace)
                    self.signal_tree(signal.SIGKILL)

                tg.start_soon(deadline)
                await self.wait()
                tg.cancel_scope.cancel()
        code = await self.wait()
        self.reap()
        return code

    def reap(self) -> None:
        """Kill whatever the main process left in its group (after it exited)."""
        if group_members(self.pid):
            self.signal_tree(signal.SIGKILL)

    def _close_master(self) -> None:
        if self._master is not None:
            master, self._master = self._master, None
            with contextlib.suppress(RuntimeError):
                anyio.notify_closing(master)
            with contextlib.suppress(OSError):
                os.close(master)

    async def aclose(self) -> None:
        """Release the pipes (after :meth:`stop` or the process's exit)."""
        self._close_master()
        for listener in list(self._listeners):
            listener.close()
        self._listeners.clear()
        with anyio.CancelScope(shield=True):
            for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await stream.aclose()
