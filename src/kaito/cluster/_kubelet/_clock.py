"""The local kubelet's one seam for time: probes, back-off and grace periods wait on it.

Structurally the same as the engine's clock (``now`` and ``sleep``), so a test can hand the
kubelet ``kaito.engine.FakeClock`` and step it instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ("KubeletClock", "MonotonicTime")


class KubeletClock(Protocol):
    """Protocol: monotonic seconds and sleeping on them."""

    def now(self) -> float:
        """Return monotonic seconds (any origin)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class MonotonicTime:
    """The real clock: ``time.monotonic`` and anyio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))
