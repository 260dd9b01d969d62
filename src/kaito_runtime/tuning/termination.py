"""Errors a user can act on, their exit codes, and the pod's termination message.

Runtime layer: shared by the tuning Job's containers (data fetch, tuning). The message goes
through :func:`kaito_runtime.adapters.termination.write_termination_message` (one line of at
most 4096 bytes at ``$KAITO_TERMINATION_LOG`` or ``/dev/termination-log``), which the controller
copies into the Workspace status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import structlog

from kaito_runtime.adapters.termination import write_termination_message

__all__ = (
    "ActionableError",
    "ConfigError",
    "InputError",
    "OutputError",
    "ResourceError",
    "run_main",
)

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


def run_main(body: Callable[[], str]) -> int:
    """Run ``body``, write the termination message, and return the process exit code.

    ``body`` returns a short success summary. An :class:`ActionableError` exits with its own
    code and message; any other exception exits 1 with its type and text, after logging the
    traceback once.
    """
    try:
        summary = body()
    except ActionableError as exc:
        write_termination_message(str(exc))
        log.error("failed", error=str(exc), exit_code=exc.exit_code, kind=type(exc).__name__)
        return exc.exit_code
    except KeyboardInterrupt:
        write_termination_message("interrupted")
        return 130
    except Exception as exc:
        line = f"unexpected error: {type(exc).__name__}: {exc}"
        write_termination_message(line)
        log.exception("failed_unexpectedly", error=line, exit_code=1)
        return 1
    write_termination_message(summary)
    return 0
