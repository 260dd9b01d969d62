"""Errors a user can act on, their exit codes, and the pod's termination message.

Runtime layer: shared by the tuning Job's containers (data fetch, tuning). The message goes
through :func:`kaito_runtime.adapters._termination.write_termination_message` (one line of at
most 4096 bytes at ``$KAITO_TERMINATION_LOG`` or ``/dev/termination-log``), which the controller
copies into the Workspace status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import structlog

from kaito_runtime.adapters import write_termination_message
from kaito_runtime.tuning._rank_results import RankResult, write_rank_result

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


def run_main(body: Callable[[], str], *, rank: int = 0) -> int:
    """Run ``body``, write the termination message, and return the process exit code.

    ``body`` returns a short success summary. An :class:`ActionableError` exits with its own
    code and message; any other exception exits 1 with its type and text, after logging the
    traceback once. Of several tuning processes (``rank``) only rank 0 writes its success
    summary, any of them a failure; each also reports its outcome to the launcher (see
    :mod:`~kaito_runtime.tuning._rank_results`).
    """
    code, message = 0, ""
    try:
        message = body()
    except ActionableError as exc:
        code, message = exc.exit_code, str(exc)
        log.error("failed", error=message, exit_code=code, kind=type(exc).__name__)
    except KeyboardInterrupt:
        code, message = 130, "interrupted"
    except Exception as exc:
        code, message = 1, f"unexpected error: {type(exc).__name__}: {exc}"
        log.exception("failed_unexpectedly", error=message, exit_code=1)
    if code != 0 or rank == 0:
        write_termination_message(message)
    write_rank_result(RankResult(rank=rank, exit_code=code, message=" ".join(message.split())))
    return code
