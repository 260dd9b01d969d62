"""The adapter command line (``python -m kaito_runtime.adapters pull|push``) and its helpers."""

from __future__ import annotations

from kaito_runtime.adapters._cli import main as main
from kaito_runtime.adapters._termination import (
    write_termination_message as write_termination_message,
)

__all__ = ("main", "write_termination_message")
