"""Structured logging for the pod processes (structlog key-value events).

Runtime layer: the pods cannot import the operator's logging set-up, so this is the pods' own.
JSON lines by default (what log pipelines want); ``KAITO_LOG_FORMAT=console`` for people.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

__all__ = ("configure_logging",)


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Configure structlog and stdlib logging once for a pod process.

    ``level`` defaults to ``$KAITO_LOG_LEVEL`` or ``info``; ``fmt`` to ``$KAITO_LOG_FORMAT`` or
    ``json``.
    """
    level_name = (level or os.environ.get("KAITO_LOG_LEVEL") or "info").upper()
    numeric = logging.getLevelNamesMapping().get(level_name)
    if numeric is None:
        raise ValueError(
            f"KAITO_LOG_LEVEL={level_name!r} is not one of debug, info, warning, error"
        )
    chosen = fmt or os.environ.get("KAITO_LOG_FORMAT") or "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if chosen == "console"
        else structlog.processors.JSONRenderer()
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
