"""Engine layer: Prometheus metrics under controller-runtime's names.

Queues, controllers and leader electors keep plain counters (:mod:`kaito.engine._stats`); an
:class:`EngineMetrics` collector turns them into metric families when the registry is
scraped. Names and labels are controller-runtime's, so its dashboards and alerts work as they
are. Each :class:`~kaito.engine._manager.Manager` owns its own ``CollectorRegistry``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kaito.engine._clock import Clock, MonotonicClock
from kaito.engine._stats import Histogram

if TYPE_CHECKING:
    from kaito.engine._controller import Controller

__all__ = ("EngineMetrics",)


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: HistogramMetricFamily, values: list[str], hist: Histogram) -> None:
    family.add_metric(values, hist.cumulative(), hist.sum)


class EngineMetrics(Collector):
    """Collects the ``controller_runtime_*``, ``workqueue_*`` and leader election metrics.

    ``registry`` is created if not given; :meth:`register_controller` and
    :meth:`register_leader` add sources.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, clock: Clock | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.clock = clock or MonotonicClock()
        self._controllers: list[Controller] = []
        self._leaders: list[tuple[str, Callable[[], bool]]] = []
        self.registry.register(self)

    def register_controller(self, controller: Controller) -> None:
        """Report ``controller`` and its queue (labels ``controller`` and ``name``)."""
        self._controllers.append(controller)

    def register_leader(self, name: str, is_leader: Callable[[], bool]) -> None:
        """Report ``leader_election_master_status{name}`` from ``is_leader()``."""
        self._leaders.append((name, is_leader))

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._collect_controllers()
        yield from self._collect_queues()
        leader = GaugeMetricFamily(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
            "backup, 1 indicates master. 'name' is the string used to identify the lease.",
            labels=["name"],
        )
        for name, is_leader in self._leaders:
            leader.add_metric([name], 1.0 if is_leader() else 0.0)
        yield leader

    def _collect_controllers(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            labels=["controller", "result"],
        )
        errors = CounterMetricFamily(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            labels=["controller"],
        )
        terminal = CounterMetricFamily(
            "controller_runtime_terminal_reconcile_errors",
            "Total number of terminal reconciliation errors per controller",
            labels=["controller"],
        )
        time = _histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
        )
        workers = GaugeMetricFamily(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            labels=["controller"],
        )
        active = GaugeMetricFamily(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            labels=["controller"],
        )
        for c in self._controllers:
            s = c.stats
            for result, n in s.totals.items():
                total.add_metric([c.name, result], n)
            errors.add_metric([c.name], s.errors)
            terminal.add_metric([c.name], s.terminal_errors)
            _add_histogram(time, [c.name], s.reconcile_time)
            workers.add_metric([c.name], c.workers)
            active.add_metric([c.name], s.active_workers)
        yield from (total, errors, terminal, time, workers, active)

    def _collect_queues(self) -> Iterator[Metric]:
        labels = ["name", "controller"]
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=labels)
        adds = CounterMetricFamily(
            "workqueue_adds", "Total number of adds handled by workqueue", labels=labels
        )
        latency = _histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels,
        )
        work = _histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            labels,
        )
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been "
            "observed by work_duration. Large values indicate stuck threads.",
            labels=labels,
        )
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels=labels,
        )
        retries = CounterMetricFamily(
            "workqueue_retries", "Total number of retries handled by workqueue", labels=labels
        )
        now = self.clock.now()
        for c in self._controllers:
            q = c.queue
            values = [q.name, c.name]
            depth.add_metric(values, len(q))
            adds.add_metric(values, q.stats.adds)
            _add_histogram(latency, values, q.stats.queue_duration)
            _add_histogram(work, values, q.stats.work_duration)
            running = [now - t for t in q.processing_since()]
            unfinished.add_metric(values, sum(running))
            longest.add_metric(values, max(running, default=0.0))
            retries.add_metric(values, q.stats.retries)
        yield from (depth, adds, latency, work, unfinished, longest, retries)
