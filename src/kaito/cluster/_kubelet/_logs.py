"""Container logs as the kubelet keeps them: one file per container and restart, in the CRI log
format (``<RFC3339Nano time> <stdout|stderr> <F|P> <content>``), rotated past a size limit, the
current and the previous run kept; read back with the options of ``kubectl logs``.

Writes are small appends from the event loop (the pump of each container's output); reads of
whole files run in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.to_thread
import attrs

__all__ = ("ContainerLog", "LogOptions", "format_cri_time")

_PARTIAL_LIMIT = 16 * 1024
_READ_CHUNK = 1024 * 1024


def format_cri_time(moment: dt.datetime) -> str:
    """RFC 3339 with nanoseconds in UTC, as CRI log lines carry it."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}000Z"


def _parse_time(stamp: bytes) -> dt.datetime | None:
    text = stamp.decode("ascii", errors="replace")
    try:
        head, _, fraction = text.rstrip("Z").partition(".")
        moment = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    micros = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
    return moment.replace(microsecond=micros)


@attrs.frozen
class LogOptions:
    """What to read, as ``PodLogOptions`` says it (``kubectl logs`` flags)."""

    container: str | None = None
    """The container (``-c``); may be omitted when the Pod has only one."""
    follow: bool = False
    """Keep streaming while the container runs (``-f``)."""
    previous: bool = False
    """The previous, terminated run of the container (``--previous``)."""
    tail_lines: int | None = None
    """Only the last N lines (``--tail``)."""
    since: dt.datetime | None = None
    """Only lines logged at or after this time (``--since``/``--since-time``)."""
    timestamps: bool = False
    """Prefix each line with its RFC 3339 time (``--timestamps``)."""
    limit_bytes: int | None = None
    """Stop after this many bytes (``--limit-bytes``)."""


@attrs.frozen
class _Entry:
    time: bytes
    stream: bytes
    full: bool
    content: bytes

    @classmethod
    def parse(cls, line: bytes) -> _Entry | None:
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return None
        content = parts[3] if len(parts) == 4 else b""
        return cls(parts[0], parts[1], parts[2] == b"F", content)

    def render(self, timestamps: bool) -> bytes:
        body = self.content + (b"\n" if self.full else b"")
        return self.time + b" " + body if timestamps else body


def _read_from(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Complete lines of ``path`` from ``offset`` (at most about 1 MiB), and the next offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(_READ_CHUNK)
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return data[: end + 1].splitlines(), offset + end + 1


def _tail(paths: list[Path], count: int) -> tuple[list[bytes], int]:
    """The last ``count`` lines over ``paths``, and the end offset in the last file."""
    lines: deque[bytes] = deque(maxlen=count)
    offset = 0
    for index, path in enumerate(paths):
        offset = 0
        while True:
            chunk, offset_next = _read_from(path, offset)
            if not chunk:
                break
            lines.extend(chunk)
            offset = offset_next
        if index < len(paths) - 1:
            offset = 0
    return list(lines), offset


class ContainerLog:
    """The log of one run of one container (``<dir>/<restartCount>.log``)."""

    def __init__(
        self, path: Path, *, wall: Callable[[], dt.datetime], max_bytes: int = 10 * 1024 * 1024
    ) -> None:
        self.path = path
        self._wall = wall
        self._max_bytes = max_bytes
        self._pending: dict[bytes, bytes] = {}
        self._size = 0
        self._rotations = 0
        self._changed = anyio.Event()
        self.closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    @property
    def rotated(self) -> Path:
        """The previous segment of this run's log (after rotation)."""
        return self.path.with_name(self.path.name + ".1")

    def write(self, stream: str, data: bytes) -> None:
        """Record output of ``stream`` (``stdout``/``stderr``); complete lines are written now,
        a trailing partial line when it completes, grows past 16 KiB or the run ends."""
        if self._fd is None or not data:
            return
        key = stream.encode()
        buffered = self._pending.pop(key, b"") + data
        stamp = format_cri_time(self._wall()).encode()
        out: list[bytes] = []
        *lines, rest = buffered.split(b"\n")
        out.extend(b"%s %s F %s\n" % (stamp, key, line) for line in lines)
        while len(rest) > _PARTIAL_LIMIT:
            out.append(b"%s %s P %s\n" % (stamp, key, rest[:_PARTIAL_LIMIT]))
            rest = rest[_PARTIAL_LIMIT:]
        if rest:
            self._pending[key] = rest
        if out:
            self._append(b"".join(out))

    def _append(self, data: bytes) -> None:
        assert self._fd is not None
        if self._size and self._size + len(data) > self._max_bytes:
            os.close(self._fd)
            os.replace(self.path, self.rotated)
            self._rotations += 1
            self._size = 0
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o640
            )
        os.write(self._fd, data)
        self._size += len(data)
        self._changed.set()
        self._changed = anyio.Event()

    def close(self) -> None:
        """End the run: flush partial lines and release followers once they have read all."""
        if self._fd is None:
            return
        stamp = format_cri_time(self._wall()).encode()
        tail = b"".join(b"%s %s P %s\n" % (stamp, key, rest) for key, rest in self._pending.items())
        self._pending.clear()
        if tail:
            self._append(tail)
        os.close(self._fd)
        self._fd = None
        self.closed = True
        self._changed.set()

    def tail_bytes(self, *, max_lines: int, max_bytes: int) -> bytes:
        """The end of the log as plain output (for ``FallbackToLogsOnError``). Blocking."""
        lines, _ = _tail([self.rotated, self.path], max_lines)
        text = b"".join(e.render(False) for e in map(_Entry.parse, lines) if e is not None)
        return text[-max_bytes:]

    async def read(self, options: LogOptions) -> AsyncIterator[bytes]:
        """Yield the log as ``kubectl logs`` shows it; with ``follow``, until the run ends."""
        budget = [options.limit_bytes]
        rotations = self._rotations
        paths = [self.rotated, self.path] if self.rotated.exists() else [self.path]
        if options.tail_lines is not None:
            lines, offset = await anyio.to_thread.run_sync(_tail, paths, max(options.tail_lines, 0))
            batches: list[list[bytes]] = [lines]
        else:
            batches, offset = [], 0
            for path in paths:
                offset = 0
                while True:
                    chunk, offset_next = await anyio.to_thread.run_sync(_read_from, path, offset)
                    if not chunk:
                        break
                    batches.append(chunk)
                    offset = offset_next
        for batch in batches:
            out = self._render(batch, options, budget)
            if out:
                yield out
            if budget[0] is not None and budget[0] <= 0:
                return
        while options.follow:
            changed = self._changed
            if self._rotations != rotations:
                batch, _ = await anyio.to_thread.run_sync(_read_from, self.rotated, offset)
                offset, rotations = 0, self._rotations
            else:
                batch, offset = await anyio.to_thread.run_sync(_read_from, self.path, offset)
            out = self._render(batch, options, budget)
            if out:
                yield out
            if budget[0] is not None and budget[0] <= 0:
                return
            if batch:
                continue
            if self.closed:
                return
            await changed.wait()

    @staticmethod
    def _render(lines: list[bytes], options: LogOptions, budget: list[int | None]) -> bytes:
        out = []
        for line in lines:
            entry = _Entry.parse(line)
            if entry is None:
                continue
            if options.since is not None:
                moment = _parse_time(entry.time)
                if moment is not None and moment < options.since:
                    continue
            out.append(entry.render(options.timestamps))
        data = b"".join(out)
        if budget[0] is not None:
            data = data[: budget[0]]
            budget[0] -= len(data)
        return data
