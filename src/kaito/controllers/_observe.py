"""What a Workspace's workloads are doing: its pods, StatefulSet and Job, read from the caches.

Controller layer (pure functions over cached JSON), plus the store indexes that find the pods
and nodes of a Workspace by its labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kaito.api import constants as c
from kaito.controllers._pod_health import diagnose_pods, restart_note
from kaito.controllers._status import JobObservation, WorkloadObservation

__all__ = (
    "UNMANAGED_INDEX",
    "WORKSPACE_INDEX",
    "index_by_workspace",
    "index_unmanaged_nodes",
    "observe_job",
    "observe_workload",
    "progress_pod_ip",
    "termination_message",
    "workspace_index_key",
)

#: Store index of pods and nodes by the ``namespace/name`` of the Workspace they belong to.
WORKSPACE_INDEX: Final = "workspace"
#: Store index of nodes KAITO did not provision (bring-your-own candidates), under "byo".
UNMANAGED_INDEX: Final = "unmanaged"


def workspace_index_key(namespace: str, name: str) -> str:
    """The :data:`WORKSPACE_INDEX` value of the Workspace ``namespace/name``."""
    return f"{namespace}/{name}"


def index_by_workspace(obj: Mapping[str, Any]) -> list[str]:
    """Index an object by the Workspace its ``kaito.sh/workspace`` labels name."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name = labels.get(c.LABEL_WORKSPACE)
    if not name:
        return []
    namespace = labels.get(c.LABEL_WORKSPACE_NAMESPACE) or (obj.get("metadata") or {}).get(
        "namespace", ""
    )
    return [workspace_index_key(namespace, name)]


def index_unmanaged_nodes(obj: Mapping[str, Any]) -> list[str]:
    """Index nodes neither a nodepool nor a Workspace claims under ``byo``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if c.LABEL_NODEPOOL in labels or c.LABEL_WORKSPACE in labels:
        return []
    return ["byo"]


def observe_workload(
    statefulset: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]],
    *,
    replicas: int,
    changed: bool,
) -> WorkloadObservation:
    """The inference StatefulSet as observed; ``changed``: just created or rolled, so the ready
    count it shows belongs to the previous spec and does not count."""
    pods = list(pods)
    status = (statefulset or {}).get("status") or {}
    return WorkloadObservation(
        exists=statefulset is not None,
        replicas=replicas,
        ready_replicas=0 if changed else int(status.get("readyReplicas") or 0),
        problem=diagnose_pods(pods),
        restarted=restart_note(pods),
    )


def observe_job(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> JobObservation:
    """The tuning Job as observed: counts, its failure with the container's termination
    message, or its pods' problem while it has neither failed nor succeeded."""
    pods = list(pods)
    status = job.get("status") or {}
    failed = next(
        (
            cond
            for cond in status.get("conditions") or ()
            if cond.get("type") == "Failed" and cond.get("status") == "True"
        ),
        None,
    )
    failed_reason = failed.get("reason", "Failed") if failed else None
    failed_message = ""
    if failed:
        detail = termination_message(pods)
        failed_message = f"tuning Job failed ({failed_reason}): {failed.get('message', '')}"
        if detail:
            failed_message += f"; {detail}"
    return JobObservation(
        exists=True,
        active=int(status.get("active") or 0),
        ready=int(status.get("ready") or 0),
        succeeded=int(status.get("succeeded") or 0),
        failed_reason=failed_reason,
        failed_message=failed_message.strip(),
        problem=None if failed or status.get("succeeded") else diagnose_pods(pods),
    )


def termination_message(pods: Iterable[Mapping[str, Any]]) -> str:
    """The termination message of the first container that exited non-zero, or ``""``."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or ():
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") not in (None, 0) and terminated.get("message"):
                return f"container {cs.get('name')}: {str(terminated['message']).strip()}"
    return ""


def progress_pod_ip(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The IP of a running pod to read tuning progress from, or None."""
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") == "Running" and status.get("podIP"):
            return str(status["podIP"])
    return None
