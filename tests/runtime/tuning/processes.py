"""Run the pod entrypoints as real processes, with JSON logs parsed back into events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import kaito_runtime

__all__ = ("events", "module_env", "spawn")

SOURCE_ROOT = Path(kaito_runtime.__file__).resolve().parents[1]


def module_env(**extra: str) -> dict[str, str]:
    """The environment for a child: this checkout's sources first, JSON logs, one CPU thread.

    One thread per process keeps small CPU runs fast on a shared 2-core machine.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SOURCE_ROOT), str(SOURCE_ROOT.parent), env.get("PYTHONPATH")) if p
    )
    env.update({"KAITO_LOG_FORMAT": "json", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def spawn(module: str, args: Sequence[str], **env: str) -> subprocess.Popen[str]:
    """Start ``python -m module args...`` with stderr (the log) piped."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=module_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(stream: IO[str]) -> Iterator[dict[str, Any]]:
    """Yield each JSON log event from ``stream`` as it arrives (other lines are skipped)."""
    for line in stream:
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue
