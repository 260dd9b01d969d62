"""Engine layer: plain counters and histograms kept on the hot path.

Queues and controllers record into these cheap structures; :mod:`kaito.engine._metrics` turns
them into Prometheus families only when ``/metrics`` is scraped, so recording costs a list
increment and no lock.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ("RECONCILE_TIME_BUCKETS", "WORKQUEUE_BUCKETS", "Histogram")

#: controller-runtime's ``controller_runtime_reconcile_time_seconds`` buckets.
RECONCILE_TIME_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8,
    0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0,
    15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
)  # fmt: skip

#: client-go's workqueue latency buckets: ``ExponentialBuckets(10e-9, 10, 12)``, 10 ns to 1000 s.
WORKQUEUE_BUCKETS: tuple[float, ...] = tuple(1e-8 * 10.0**i for i in range(12))


class Histogram:
    """Cumulative-on-read histogram: ``observe`` is one bisect and two additions."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Return Prometheus buckets: ``(upper bound, cumulative count)`` ending with ``+Inf``."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out
