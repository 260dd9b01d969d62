"""The simulated control plane: which controllers run, and starting them."""

from __future__ import annotations

import attrs
from anyio.abc import TaskGroup

from kaito.cluster._controllers._crds import CrdCleanupController
from kaito.cluster._controllers._gc import GarbageCollector
from kaito.cluster._controllers._loop import ControlLoop, start_control_loop
from kaito.cluster._controllers._namespaces import NamespaceController, ServiceAccountController
from kaito.cluster._meta import TimeSource
from kaito.cluster._rest import RestApi
from kaito.cluster._sim import (
    DeploymentController,
    ImmediateKubelet,
    JobController,
    Kubelet,
    NodeAgent,
    Scheduler,
    StatefulSetController,
)
from kaito.cluster._store import Storage

__all__ = ("Controllers", "run_controllers", "start_control_loop")


@attrs.frozen
class Controllers:
    """Switches for the simulated controllers (all on by default)."""

    garbage_collector: bool = True
    namespaces: bool = True
    """Namespace deletion and the ``default`` ServiceAccount of each namespace."""
    crd_cleanup: bool = True
    scheduler: bool = True
    deployments: bool = True
    statefulsets: bool = True
    jobs: bool = True
    kubelet: bool = True
    """Run the :class:`Kubelet` for Pods bound to Nodes."""
    endpoints: bool = True
    """EndpointSlices and Endpoints of Services with a selector (and of ``kubernetes``)."""

    @classmethod
    def all(cls) -> Controllers:
        """Every controller."""
        return cls()

    @classmethod
    def none(cls) -> Controllers:
        """No controllers: a bare API server (objects only change when clients change them)."""
        return cls(False, False, False, False, False, False, False, False, False)

    @classmethod
    def api_only(cls) -> Controllers:
        """What kube-apiserver and kube-controller-manager do for API objects alone: garbage
        collection, namespace and CRD deletion; no scheduling, workloads or kubelet."""
        return cls(True, True, True, False, False, False, False, False, False)


async def run_controllers(
    tasks: TaskGroup,
    rest: RestApi,
    store: Storage,
    controllers: Controllers,
    *,
    kubelet: Kubelet | None,
    clock: TimeSource,
) -> None:
    """Start the enabled controllers in ``tasks`` (they run until the group is cancelled)."""
    del clock
    enabled: list[ControlLoop] = []
    if controllers.garbage_collector:
        enabled.append(GarbageCollector(rest))
    if controllers.namespaces:
        enabled += [NamespaceController(rest), ServiceAccountController(rest)]
    if controllers.crd_cleanup:
        enabled.append(CrdCleanupController(rest))
    if controllers.scheduler:
        enabled.append(Scheduler(rest))
    if controllers.deployments:
        enabled.append(DeploymentController(rest))
    if controllers.statefulsets:
        enabled.append(StatefulSetController(rest))
    if controllers.jobs:
        enabled.append(JobController(rest))
    if controllers.kubelet:
        enabled.append(NodeAgent(rest, kubelet or ImmediateKubelet(), tasks))
    for reconciler in enabled:
        start_control_loop(tasks, store, reconciler)
