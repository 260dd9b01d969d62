"""Structured logging set-up shared by every ``kaito`` process (structlog key-value events)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

__all__ = ("configure_logging",)

LogFormat = Literal["console", "json"]


class _StderrLogger:
    """Writes each event line to whatever ``sys.stderr`` is when it is written (never a stale,
    closed stream)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger(*_args: object) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str = "info", fmt: LogFormat = "console") -> None:
    """Configure structlog (and stdlib logging) once for a process.

    ``console`` prints readable key=value lines for development; ``json`` prints one JSON
    object per event for production log pipelines. Context bound with
    ``structlog.contextvars.bound_contextvars`` appears on every line.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"log level {level!r} is not one of debug, info, warning, error")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(name)s %(message)s")
