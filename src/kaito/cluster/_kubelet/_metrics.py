"""The local kubelet's Prometheus metrics, named as the kubelet's own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ("KubeletMetrics",)


class KubeletMetrics:
    """Started containers, start errors, running pods and containers (in ``registry``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        running_pods: Callable[[], int],
        running_containers: Callable[[], int],
    ) -> None:
        self.registry = registry
        self._started = Counter(
            "kubelet_started_containers_total",
            "Cumulative number of containers started",
            ["container_type"],
            registry=registry,
        )
        self._errors = Counter(
            "kubelet_started_containers_errors_total",
            "Cumulative number of errors when starting containers",
            ["code", "container_type"],
            registry=registry,
        )
        pods = Gauge(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            registry=registry,
        )
        pods.set_function(lambda: float(running_pods()))
        containers = Gauge(
            "kubelet_running_containers",
            "Number of containers currently running",
            ["container_state"],
            registry=registry,
        )
        containers.labels("running").set_function(lambda: float(running_containers()))

    def started(self, init: bool) -> None:
        """A container run started."""
        self._started.labels("init_container" if init else "container").inc()

    def start_error(self, init: bool) -> None:
        """A container run could not start."""
        self._errors.labels("StartError", "init_container" if init else "container").inc()
