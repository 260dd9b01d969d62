"""A progress line for long transfers, at most every few seconds, from an injected clock.

Runtime layer (tuning Job init container).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

__all__ = ("ProgressReporter",)

log = structlog.get_logger(__name__)


class ProgressReporter:
    """Log ``download_progress`` when ``interval`` seconds have passed since the last line.

    ``clock`` is a monotonic clock (tests step a fake one). Rates are computed from the bytes
    moved since this reporter started, so a resumed transfer reports its real speed.
    """

    def __init__(
        self,
        *,
        url: str,
        file: str,
        start_bytes: int,
        total: int | None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.file = file
        self.total = total
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._start_bytes = start_bytes
        self.bytes = start_bytes
        self.lines = 0

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes and log a line if the interval has passed."""
        self.bytes += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._emit("download_progress", now)

    def finish(self) -> None:
        """Log the completion line with the final size and average rate."""
        self._emit("download_completed", self._clock())

    def _emit(self, event: str, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        fields: dict[str, object] = {
            "url": self.url,
            "file": self.file,
            "bytes": self.bytes,
            "rate_bytes_per_second": round((self.bytes - self._start_bytes) / elapsed),
        }
        if self.total:
            fields["total_bytes"] = self.total
            fields["percent"] = round(100.0 * self.bytes / self.total, 1)
        self.lines += 1
        log.info(event, **fields)
