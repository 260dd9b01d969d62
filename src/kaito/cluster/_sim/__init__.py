"""Simulated cluster components: scheduler, workload controllers, the pluggable kubelet."""

from kaito.cluster._sim._kubelet import (
    ImmediateKubelet,
    Kubelet,
    NodeAgent,
    PodStatusWriter,
    node_object,
)
from kaito.cluster._sim._scheduler import Scheduler, node_fits
from kaito.cluster._sim._workloads import DeploymentController, JobController, StatefulSetController

__all__ = (
    "DeploymentController",
    "ImmediateKubelet",
    "JobController",
    "Kubelet",
    "NodeAgent",
    "PodStatusWriter",
    "Scheduler",
    "StatefulSetController",
    "node_fits",
    "node_object",
)
