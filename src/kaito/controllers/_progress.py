"""Tuning progress for the Workspace status, read from the tuning pod's ``GET /progress``.

Controller layer. ``kaito_runtime.tuning`` serves its progress document on port 5000 while it
runs; the controller turns it into one line (``step 40/100, epoch 0.40, loss 1.2345, 512
tokens/s, ETA 2m``) for the ``JobStarted`` condition. Reading is best effort with a short timeout:
progress is news, never a reason to fail a reconcile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp

__all__ = ("ProgressReader", "describe_progress", "http_progress_reader")

ProgressReader = Callable[[str], Awaitable[str | None]]
"""Reads the progress line of the tuning pod at an IP (None when unavailable)."""

PROGRESS_PORT: Final = 5000


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h"


def describe_progress(doc: Mapping[str, Any]) -> str | None:
    """One line from a progress document, or None when there is nothing to say yet."""
    phase = doc.get("phase")
    step, total = doc.get("step"), doc.get("max_steps")
    if phase != "training" or not isinstance(step, int) or not isinstance(total, int) or not total:
        return str(phase) if isinstance(phase, str) and phase != "training" else None
    parts = [f"step {step}/{total}"]
    if isinstance(doc.get("epoch"), int | float):
        parts.append(f"epoch {doc['epoch']:.2f}")
    if isinstance(doc.get("loss"), int | float):
        parts.append(f"loss {doc['loss']:.4f}")
    if isinstance(doc.get("tokens_per_second"), int | float):
        parts.append(f"{doc['tokens_per_second']:.0f} tokens/s")
    if isinstance(doc.get("eta_seconds"), int | float):
        parts.append(f"ETA {_duration(doc['eta_seconds'])}")
    return ", ".join(parts)


def http_progress_reader(timeout: float = 0.5, port: int = PROGRESS_PORT) -> ProgressReader:
    """A reader that GETs ``http://<pod IP>:<port>/progress``."""

    async def read(pod_ip: str) -> str | None:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(f"http://{pod_ip}:{port}/progress") as resp,
            ):
                if resp.status != 200:
                    return None
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return describe_progress(doc) if isinstance(doc, dict) else None

    return read
