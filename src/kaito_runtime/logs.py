"""Structured logging for the pod processes: structlog key-value events on stderr.

stdout stays free for command output (a pushed digest); logs go to stderr, as console lines for
people or JSON lines (``KAITO_LOG_FORMAT=json``) for log pipelines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import structlog

__all__ = ("LogFormat", "configure_logging")

LogFormat = Literal["console", "json"]


class _StderrLogger:
    """Writes each event line to whatever ``sys.stderr`` is when it is written (never a stale,
    closed stream)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger(*_args: object) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str | None = None, fmt: LogFormat | None = None) -> None:
    """Configure structlog and stdlib logging for this process, writing to stderr.

    ``level`` defaults to ``$KAITO_LOG_LEVEL`` or ``info``; ``fmt`` to ``$KAITO_LOG_FORMAT`` or
    ``console``.
    """
    level_name = (level or os.environ.get("KAITO_LOG_LEVEL") or "info").upper()
    numeric = logging.getLevelNamesMapping().get(level_name)
    if numeric is None:
        raise ValueError(
            f"log level {level_name.lower()!r} is not one of debug, info, warning, error"
        )
    chosen = fmt or os.environ.get("KAITO_LOG_FORMAT") or "console"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if chosen == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
