"""Errors a user can act on, their exit codes, and the pod's termination message.

Runtime layer: shared by the tuning Job's containers (data fetch, tuning). Kubernetes copies the
file at ``terminationMessagePath`` (``/dev/termination-log``) into the container status, and the
controller copies that into the Workspace status, so the message is one actionable line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import structlog

__all__ = (
    "DEFAULT_TERMINATION_LOG",
    "MAX_TERMINATION_BYTES",
    "TERMINATION_LOG_ENV",
    "ActionableError",
    "ConfigError",
    "InputError",
    "OutputError",
    "ResourceError",
    "run_main",
    "termination_log_path",
    "write_termination_message",
)

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_LOG_ENV = "KAITO_TERMINATION_LOG"
MAX_TERMINATION_BYTES = 4096

log = structlog.get_logger(__name__)


class ActionableError(Exception):
    """An error whose message tells the user what to change; it ends the process.

    Subclasses choose the exit code so the controller (and a person reading ``kubectl describe``)
    can tell a bad configuration from bad input data, too little memory or a refused push.
    """

    exit_code: ClassVar[int] = 1


class ConfigError(ActionableError):
    """The tuning configuration or the command line is invalid."""

    exit_code: ClassVar[int] = 2


class InputError(ActionableError):
    """The input data cannot be fetched or does not fit the configuration."""

    exit_code: ClassVar[int] = 3


class ResourceError(ActionableError):
    """The model or batch does not fit the accelerator's memory."""

    exit_code: ClassVar[int] = 4


class OutputError(ActionableError):
    """The result cannot be written or pushed."""

    exit_code: ClassVar[int] = 5


def termination_log_path() -> Path:
    """Return where the termination message goes: ``$KAITO_TERMINATION_LOG`` or the default."""
    override = os.environ.get(TERMINATION_LOG_ENV)
    return Path(override) if override else DEFAULT_TERMINATION_LOG


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    data = text.encode()
    if len(data) <= MAX_TERMINATION_BYTES:
        return text
    return data[: MAX_TERMINATION_BYTES - 3].decode(errors="ignore") + "..."


def write_termination_message(message: str, path: Path | None = None) -> str:
    """Write ``message`` as one line of at most 4096 bytes; return the line written.

    A missing or read-only target (a process run by hand outside a pod) is logged and ignored:
    the message is a convenience for the controller, never a reason to fail.
    """
    line = _one_line(message)
    target = path if path is not None else termination_log_path()
    try:
        target.write_text(line + "\n")
    except OSError as exc:
        log.debug("termination_log_unwritable", path=str(target), error=str(exc))
    return line


def run_main(body: Callable[[], str]) -> int:
    """Run ``body``, write the termination message, and return the process exit code.

    ``body`` returns a short success summary. An :class:`ActionableError` exits with its own
    code and message; any other exception exits 1 with its type and text, after logging the
    traceback once.
    """
    try:
        summary = body()
    except ActionableError as exc:
        line = write_termination_message(str(exc))
        log.error("failed", error=line, exit_code=exc.exit_code, kind=type(exc).__name__)
        return exc.exit_code
    except KeyboardInterrupt:
        write_termination_message("interrupted")
        return 130
    except Exception as exc:
        line = write_termination_message(f"unexpected error: {type(exc).__name__}: {exc}")
        log.exception("failed_unexpectedly", error=line, exit_code=1)
        return 1
    write_termination_message(summary)
    return 0
