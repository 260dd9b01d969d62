"""The Workspace status, computed from what was observed: conditions, state, worker nodes.

Controller layer (pure functions). Recomputed from scratch on every reconcile (level-triggered);
``set_condition`` keeps transition times stable. ``WorkspaceReady`` (the guide's name) always
tells the same truth as ``WorkspaceSucceeded`` (upstream's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from kaito.api import Condition, find_condition, set_condition
from kaito.api.constants import ConditionType as T
from kaito.api.constants import Reason as R
from kaito.api.constants import WorkspaceState as S
from kaito.api.v1beta1 import Workspace, WorkspaceStatus
from kaito.controllers._pod_health import PodProblem

__all__ = (
    "JobObservation",
    "NodeObservation",
    "WorkloadObservation",
    "compute_status",
    "invalid_status",
    "status_patch",
)

_NOT_STARTED: Final = "the workload has not been created yet"

_Put = Callable[[str, bool, str, str], None]


@attrs.frozen
class NodeObservation:
    """GPU nodes: how many are wanted and ready, and why not when they are not."""

    wanted: int
    ready_nodes: tuple[str, ...] = ()
    #: Upstream sub-reason when not ready (NodeClaimNotReady, NodeNotReady, a provisioning error).
    reason: str | None = None
    message: str = ""
    #: Whether KAITO provisions nodes (node auto-provisioning) or uses bring-your-own ones.
    provisioned: bool = True
    #: Whether the provisioner fulfilled every claim (None: not reported, judge by the count).
    claims_ready: bool | None = None
    #: Why joined nodes are not usable: NodeNotReady or NodePluginsNotReady.
    node_reason: str | None = None
    #: Seconds the provisioner asked to wait before it is asked again (None: the default poll).
    retry_after: float | None = None

    @property
    def ready(self) -> bool:
        return len(self.ready_nodes) >= self.wanted and self.reason is None


@attrs.frozen
class WorkloadObservation:
    """An inference StatefulSet: replicas wanted and ready, and its pods' problem if any."""

    exists: bool
    replicas: int = 0
    ready_replicas: int = 0
    problem: PodProblem | None = None
    #: Why a running pod is not ready, when its container was restarted (or "").
    restarted: str = ""


@attrs.frozen
class JobObservation:
    """A tuning Job: counts, its failure (reason, message) and the latest progress."""

    exists: bool
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed_reason: str | None = None
    failed_message: str = ""
    progress: str | None = None
    problem: PodProblem | None = None


@attrs.define
class _Conditions:
    """Conditions being rewritten for one generation at one instant."""

    conds: tuple[Condition, ...]
    generation: int
    now: str

    def put(self, type_: str, ok: bool, reason: str, message: str) -> None:
        new = Condition(
            type=type_,
            status="True" if ok else "False",
            reason=reason,
            message=message,
            observed_generation=self.generation,
            last_transition_time=self.now,
        )
        self.conds = set_condition(self.conds, new)


def compute_status(
    ws: Workspace,
    nodes: NodeObservation,
    *,
    now: str,
    workload: WorkloadObservation | None = None,
    job: JobObservation | None = None,
) -> WorkspaceStatus:
    """The status a Workspace should have given what was observed (``now`` is RFC 3339)."""
    old = ws.status or WorkspaceStatus()
    before = tuple(old.conditions or ())
    out = _Conditions(before, ws.metadata.generation or 0, now)
    _put_resource(out.put, nodes)
    if ws.inference is not None:
        state = _put_inference(out.put, nodes, workload or WorkloadObservation(False), before)
    else:
        state = _put_tuning(out.put, nodes, job or JobObservation(False))
    return WorkspaceStatus(
        worker_nodes=tuple(sorted(nodes.ready_nodes)) or old.worker_nodes,
        state=state,
        conditions=out.conds,
        target_node_count=old.target_node_count or nodes.wanted,
        performance=old.performance,
    )


def _put_resource(put: _Put, nodes: NodeObservation) -> None:
    have = f"{len(nodes.ready_nodes)}/{nodes.wanted}"
    nodes_ready = len(nodes.ready_nodes) >= nodes.wanted
    put(
        T.NODES_READY,
        nodes_ready,
        R.NODES_READY if nodes_ready else (nodes.node_reason or R.NODE_NOT_READY),
        f"{have} GPU nodes ready" + ("" if nodes_ready else f": {nodes.message}".rstrip(": ")),
    )
    claims_ok = nodes.reason is None and nodes.claims_ready is not False
    if nodes.provisioned:
        put(
            T.NODE_CLAIM_READY,
            claims_ok,
            R.NODE_CLAIMS_READY if claims_ok else (nodes.reason or R.NODE_CLAIM_NOT_READY),
            "node requests fulfilled" if claims_ok else nodes.message,
        )
    if nodes.ready:
        put(T.RESOURCE_READY, True, R.RESOURCE_SUCCESS, f"{have} GPU nodes ready")
    else:
        # As upstream: the claims' reason while they are not fulfilled, then the nodes'.
        reason = nodes.reason or (
            R.NODE_CLAIM_NOT_READY
            if nodes.provisioned and not claims_ok
            else nodes.node_reason or R.RESOURCE_NOT_READY
        )
        put(
            T.RESOURCE_READY, False, reason, f"{have} GPU nodes ready: {nodes.message}".rstrip(": ")
        )


def _put_inference(
    put: _Put,
    nodes: NodeObservation,
    workload: WorkloadObservation,
    before: tuple[Condition, ...],
) -> str:
    if workload.problem is not None:
        ok, reason, message = False, workload.problem.reason, workload.problem.message
    elif not nodes.ready:
        ok, reason, message = False, R.INFERENCE_PENDING, "waiting for the GPU nodes"
    elif not workload.exists:
        ok, reason, message = False, R.INFERENCE_PENDING, _NOT_STARTED
    elif workload.replicas > 0 and workload.ready_replicas >= workload.replicas:
        ok, reason, message = True, R.INFERENCE_SUCCESS, "the inference service is ready"
    else:
        ok, reason = False, R.INFERENCE_PENDING
        message = f"{workload.ready_replicas}/{workload.replicas} inference pods ready"
        if workload.restarted:
            message += f": {workload.restarted}"
    put(T.INFERENCE_READY, ok, reason, message)
    summary = "the workspace is ready" if ok else message
    put(T.WORKSPACE_SUCCEEDED, ok, R.SUCCEEDED if ok else R.PENDING, summary)
    put(T.WORKSPACE_READY, ok, R.SUCCEEDED if ok else R.PENDING, summary)
    if ok:
        return S.READY
    was_ready = find_condition(before, T.WORKSPACE_SUCCEEDED)
    return S.NOT_READY if was_ready is not None and was_ready.status == "True" else S.PENDING


def _put_tuning(put: _Put, nodes: NodeObservation, job: JobObservation) -> str:
    if job.failed_reason is not None:
        message = job.failed_message or job.failed_reason
        put(T.JOB_STARTED, False, R.TUNING_FAILED, message)
        put(T.WORKSPACE_SUCCEEDED, False, R.FAILED, message)
        put(T.WORKSPACE_READY, False, R.FAILED, message)
        return S.FAILED
    if job.succeeded > 0:
        put(T.JOB_STARTED, True, R.TUNING_STARTED, "the tuning job ran")
        put(T.WORKSPACE_SUCCEEDED, True, R.SUCCEEDED, "tuning succeeded")
        put(T.WORKSPACE_READY, True, R.SUCCEEDED, "tuning succeeded")
        return S.SUCCEEDED
    started = job.active > 0 or job.ready > 0
    if job.problem is not None:
        message = job.problem.message
        put(T.JOB_STARTED, False, job.problem.reason, message)
    elif started:
        message = "tuning is running" + (f": {job.progress}" if job.progress else "")
        put(T.JOB_STARTED, True, R.TUNING_STARTED, message)
    else:
        message = (
            "waiting for the GPU nodes"
            if not nodes.ready
            else ("the tuning job is starting" if job.exists else _NOT_STARTED)
        )
        put(T.JOB_STARTED, False, R.TUNING_PENDING, message)
    put(T.WORKSPACE_SUCCEEDED, False, R.PENDING, message)
    put(T.WORKSPACE_READY, False, R.PENDING, message)
    return S.RUNNING if started else S.PENDING


def invalid_status(ws: Workspace, problems: Iterable[object], *, now: str) -> WorkspaceStatus:
    """The status of a Workspace admission refuses: not succeeded, with every problem."""
    message = "; ".join(str(p) for p in problems)[:2000]
    old = ws.status or WorkspaceStatus()
    conds = tuple(old.conditions or ())
    for type_ in (T.WORKSPACE_SUCCEEDED, T.WORKSPACE_READY):
        conds = set_condition(
            conds,
            Condition(
                type=type_,
                status="False",
                reason="InvalidWorkspace",
                message=message,
                observed_generation=ws.metadata.generation,
                last_transition_time=now,
            ),
        )
    return WorkspaceStatus(
        worker_nodes=old.worker_nodes,
        state=S.FAILED if ws.tuning else S.PENDING,
        conditions=conds,
        target_node_count=old.target_node_count,
        performance=old.performance,
    )


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch from status ``old`` to ``new`` (JSON), or None when they are the same."""
    if {k: v for k, v in old.items() if v is not None} == {
        k: v for k, v in new.items() if v is not None
    }:
        return None
    return {k: new.get(k) for k in set(old) | set(new)}
