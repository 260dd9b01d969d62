"""Imports every subcommand module so that each registers itself on ``kaito.cli.main``."""

from __future__ import annotations

from kaito.cli import cluster  # noqa: F401
