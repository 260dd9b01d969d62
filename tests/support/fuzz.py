"""The fuzz budget shared by every fuzz target (marker ``fuzz``).

The default test run gives each target a few seconds; ``nox -s fuzz`` raises the budget through
``KAITO_FUZZ_SECONDS``. Targets report how many inputs they tried, so a longer run shows its work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ("FuzzBudget", "fuzz_seconds", "hypothesis_budget")

DEFAULT_SECONDS = 4.0


def fuzz_seconds() -> float:
    """Seconds each fuzz target may run (``KAITO_FUZZ_SECONDS``, default a few)."""
    return float(os.environ.get("KAITO_FUZZ_SECONDS", DEFAULT_SECONDS))


def hypothesis_budget(**overrides: Any) -> settings:
    """Hypothesis settings for a fuzz target: examples in proportion to :func:`fuzz_seconds`.

    Use with :class:`FuzzBudget`, whose ``spend()`` turns later examples into no-ops once the time
    is spent, so a slow target still ends on time.
    """
    return settings(
        max_examples=max(50, int(100 * fuzz_seconds())),
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        **overrides,
    )


class FuzzBudget:
    """Counts inputs and says when the time budget is spent.

    Wrap a hypothesis test body: ``budget.spend()`` returns False once time is up (the body then
    returns at once, and hypothesis finishes quickly); ``budget.report(name)`` prints the count.
    The first ``minimum`` inputs run whatever the clock says, so a target on a loaded machine
    still tries something (and its assertions about what it saw still mean something).
    """

    def __init__(
        self,
        seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        minimum: int = 20,
    ):
        self._clock = clock
        self.minimum = minimum
        self.seconds = fuzz_seconds() if seconds is None else seconds
        self._deadline = clock() + self.seconds
        self.tried = 0

    def spend(self) -> bool:
        if self.tried >= self.minimum and self._clock() >= self._deadline:
            return False
        self.tried += 1
        return True

    def report(self, name: str) -> str:
        line = f"fuzz {name}: {self.tried} inputs in {self.seconds:.0f} s, no failures"
        print(line)
        return line
