"""Prometheus metrics of a node backend: claims created and deleted, problems by reason.

Provisioner layer. Backends keep plain counters (:class:`ProvisioningStats`); a
:class:`ProvisioningMetrics` collector turns them into metric families when the manager's
registry is scraped (the engine's pattern), so a backend works with or without a registry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import attrs
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ("ProvisioningMetrics", "ProvisioningStats")


@attrs.define
class ProvisioningStats:
    """What one backend did: claims (agent pools, NodeClaims, Nodes) created and deleted, and
    the problems it reported to Workspaces, by reason (each counted when it arose)."""

    backend: str
    created: int = 0
    deleted: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)

    def error(self, reason: str) -> None:
        """Count a problem reported with ``reason``."""
        self.errors[reason] += 1


class ProvisioningMetrics(Collector):
    """``kaito_provisioner_claims_created_total``, ``..._claims_deleted_total`` and
    ``kaito_provisioner_errors_total`` (label ``reason``), all labelled ``backend``."""

    def __init__(self, stats: ProvisioningStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        created = CounterMetricFamily(
            "kaito_provisioner_claims_created",
            "Node claims (agent pools, NodeClaims, Nodes) the backend created.",
            labels=["backend"],
        )
        created.add_metric([stats.backend], stats.created)
        deleted = CounterMetricFamily(
            "kaito_provisioner_claims_deleted",
            "Node claims the backend deleted (Workspaces deleted, failures, garbage).",
            labels=["backend"],
        )
        deleted.add_metric([stats.backend], stats.deleted)
        errors = CounterMetricFamily(
            "kaito_provisioner_errors",
            "Provisioning problems reported to Workspaces, by reason.",
            labels=["backend", "reason"],
        )
        for reason, count in sorted(stats.errors.items()):
            errors.add_metric([stats.backend, reason], count)
        yield created
        yield deleted
        yield errors
