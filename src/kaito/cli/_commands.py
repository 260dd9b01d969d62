"""Imports every subcommand module so that each registers itself on ``kaito.cli.main``."""

from __future__ import annotations

import kaito.cli._cluster
import kaito.cli._crds
import kaito.cli._docs
import kaito.cli._manager
import kaito.cli._up
import kaito.cli._validate  # noqa: F401
