"""Running kubectl on a terminal of its own (a pseudo-terminal), as a person at a shell would:
``kubectl exec -it`` and ``kubectl run -it`` only use a TTY when their stdin is one."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_in_terminal(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    typed: bytes = b"",
    rows: int = 33,
    cols: int = 101,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """Run ``argv`` with a terminal of ``rows`` x ``cols`` as stdin, stdout and stderr; type
    ``typed`` once it starts; return its exit code and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        process = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    finally:
        os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        if typed:
            os.write(master, typed)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{argv} ran past {timeout}s; wrote {bytes(output)!r}")
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError as error:
                if error.errno == errno.EIO:  # every writer closed the terminal
                    break
                raise
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=max(deadline - time.monotonic(), 1.0)), bytes(output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
