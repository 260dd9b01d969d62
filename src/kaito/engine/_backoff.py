"""Engine layer: jittered exponential backoff for informers and leader election retries."""

from __future__ import annotations

import random

__all__ = ("Backoff",)


class Backoff:
    """Exponential backoff with jitter, as client-go's reflector uses.

    The n-th consecutive failure waits ``min(initial * factor**n, cap)`` plus up to ``jitter``
    times that again. ``reset`` after a success starts over.
    """

    def __init__(
        self,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before retrying."""
        exp = min(self.failures, 64)
        self.failures += 1
        base = min(self.initial * self.factor**exp, self.cap)
        return base + base * self.jitter * self._rng.random()

    def reset(self) -> None:
        """Forget past failures."""
        self.failures = 0
