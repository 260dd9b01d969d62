"""Imports every subcommand module so that each registers itself on ``kaito.cli.main``."""

from __future__ import annotations

import kaito.cli.cluster
import kaito.cli.crds
import kaito.cli.docs
import kaito.cli.manager
import kaito.cli.up
import kaito.cli.validate  # noqa: F401
