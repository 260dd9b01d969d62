"""The test kit: what tests and platform teams' CI import to run KAITO in one process.

Top layer, like ``kopf.testing``: a thin set of names over the in-process cluster
(:mod:`kaito.cluster`) and the embedded operator (:mod:`kaito.embedded`)::

    async with embedded_kaito() as kaito:
        kaito.cluster.faults.add(FaultRule(...))
        ...

- :func:`embedded_kaito` runs the API server, the CRD, the admission webhooks and the manager with
  simulated GPU nodes for the duration of a block;
- a scripted kubelet: implement :class:`Kubelet` (``run_pod``) and drive each Pod's state through
  the :class:`PodStatusWriter` it is given, or use :class:`ImmediateKubelet`;
- fault injection: :class:`Faults` with :class:`FaultRule` values matched on :class:`RequestInfo`.
"""

from __future__ import annotations

from kaito.cluster import (
    Cluster,
    FaultRule,
    Faults,
    ImmediateKubelet,
    Kubelet,
    PodStatusWriter,
    RequestInfo,
    start_cluster,
)
from kaito.embedded import Embedded, embedded_kaito

__all__ = (
    "Cluster",
    "Embedded",
    "FaultRule",
    "Faults",
    "ImmediateKubelet",
    "Kubelet",
    "PodStatusWriter",
    "RequestInfo",
    "embedded_kaito",
    "start_cluster",
)
