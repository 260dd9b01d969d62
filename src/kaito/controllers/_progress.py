"""Tuning progress for the Workspace status, read from the tuning pod's ``GET /progress``.

Controller layer. ``kaito_runtime.tuning`` serves the contract's progress document
(:class:`kaito_runtime.contract.TuningProgress`) on the server port while it runs; the
controller turns it into one line (``step 40/100, epoch 0.40, loss 1.2345, 512 tokens/s, ETA
2m``) for the ``JobStarted`` condition. Reading is best effort with a short timeout: progress is
news, never a reason to fail a reconcile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp

from kaito_runtime.contract import PROGRESS_PATH, SERVER_PORT, TuningProgress

__all__ = ("ProgressReader", "describe_progress", "http_progress_reader")

ProgressReader = Callable[[str], Awaitable[str | None]]
"""Reads the progress line of the tuning pod at an IP (None when unavailable)."""

PROGRESS_PORT: Final = SERVER_PORT


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h"


def describe_progress(doc: Mapping[str, Any]) -> str | None:
    """One line from a progress document, or None when there is nothing to say yet."""
    progress = TuningProgress.from_json(doc)
    if progress is None:
        return None
    if progress.phase != "training":
        return progress.phase
    if not progress.max_steps:
        return None
    parts = [f"step {progress.step}/{progress.max_steps}", f"epoch {progress.epoch:.2f}"]
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4f}")
    if progress.tokens_per_second is not None:
        parts.append(f"{progress.tokens_per_second:.0f} tokens/s")
    if progress.eta_seconds is not None:
        parts.append(f"ETA {_duration(progress.eta_seconds)}")
    return ", ".join(parts)


def http_progress_reader(timeout: float = 0.5, port: int = PROGRESS_PORT) -> ProgressReader:
    """A reader that GETs ``http://<pod IP>:<port>/progress``."""

    async def read(pod_ip: str) -> str | None:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(f"http://{pod_ip}:{port}{PROGRESS_PATH}") as resp,
            ):
                if resp.status != 200:
                    return None
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return describe_progress(doc) if isinstance(doc, dict) else None

    return read
