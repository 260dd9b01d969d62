"""Imports every subcommand module so that each registers itself on ``kaito.cli.main``."""

from __future__ import annotations

import kaito.cli.crds
import kaito.cli.up
import kaito.cli.validate  # noqa: F401
from kaito.cli import cluster  # noqa: F401
