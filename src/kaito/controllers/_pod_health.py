"""Why a workload's pods are not running, classified as upstream KAITO classifies it.

Controller layer (pure functions over Pod JSON). A Workspace must never report ready while its
pod crash-loops: these reasons feed ``InferenceReady=False``. The checks, their order and the
kubelet reasons each one matches are upstream's (``classifyInferencePodFailure``): container
failures first (OOM kill, image pull, container start, crash loop; init containers included),
then evictions (by node disk or memory pressure when the message says so), then unschedulable
Pods. A Pod that is merely starting, or running but not ready yet, is no problem: the Workspace
stays pending (``WorkspaceInferenceStatusPending``), as upstream's does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from kaito.api.constants import Reason

__all__ = ("PodProblem", "diagnose_pods", "restart_note")

#: Image-pull reasons of the kubelet (k8s.io/kubernetes/pkg/kubelet/images).
IMAGE_PULL_REASONS: Final = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "ImageInspectError",
        "RegistryUnavailable",
    }
)
#: Container create/start reasons of the kubelet (kuberuntime's startContainer).
START_REASONS: Final = frozenset(
    {
        "CreateContainerConfigError",
        "PreCreateHookError",
        "CreateContainerError",
        "PreStartHookError",
        "RunContainerError",
        "PostStartHookError",
    }
)
#: Upstream caps the condition message at this length.
MAX_MESSAGE: Final = 256

_Status = Mapping[str, Any]
_Check = Callable[[_Status], str | None]


@attrs.frozen
class PodProblem:
    """The most telling problem among a workload's pods: a condition reason and a message."""

    reason: str
    message: str


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _oom(cs: _Status) -> str | None:
    for terminated in ((cs.get("state") or {}).get("terminated"), _last(cs)):
        if terminated and terminated.get("reason") == "OOMKilled":
            return (
                f"container {_name(cs)} was OOMKilled (exit code {terminated.get('exitCode')}); "
                "reduce memory usage or use a larger instance type"
            )
    return None


def _image_pull(cs: _Status) -> str | None:
    waiting = _waiting(cs)
    if waiting.get("reason") in IMAGE_PULL_REASONS:
        return (
            f"container {_name(cs)} image pull failed ({waiting['reason']}): "
            f"{waiting.get('message', '')}"
        )
    return None


def _start_error(cs: _Status) -> str | None:
    waiting = _waiting(cs)
    if waiting.get("reason") in START_REASONS:
        return (
            f"container {_name(cs)} failed to start ({waiting['reason']}): "
            f"{waiting.get('message', '')}"
        )
    return None


def _crash_loop(cs: _Status) -> str | None:
    if _waiting(cs).get("reason") != "CrashLoopBackOff":
        return None
    message = f"container {_name(cs)} is in CrashLoopBackOff"
    last = _last(cs)
    if last:
        detail = last.get("message") or f"exit code {last.get('exitCode')}"
        message += f"; last termination: {detail}"
    return message


#: Container checks, most actionable first; each runs over every container of every Pod before
#: the next one does.
_CONTAINER_CHECKS: Final[tuple[tuple[str, _Check], ...]] = (
    (Reason.OOM_KILLED, _oom),
    (Reason.IMAGE_PULL_ERROR, _image_pull),
    (Reason.CONTAINER_START_ERROR, _start_error),
    (Reason.CRASH_LOOP_BACK_OFF, _crash_loop),
)


def _name(cs: _Status) -> str:
    return f'"{cs.get("name", "?")}"'


def _waiting(cs: _Status) -> Mapping[str, Any]:
    return (cs.get("state") or {}).get("waiting") or {}


def _last(cs: _Status) -> Mapping[str, Any]:
    return (cs.get("lastState") or {}).get("terminated") or {}


def _containers(pod: Mapping[str, Any]) -> list[_Status]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]


def _evicted(pod: Mapping[str, Any]) -> PodProblem | None:
    status = pod.get("status") or {}
    if status.get("phase") != "Failed" or status.get("reason") != "Evicted":
        return None
    name = (pod.get("metadata") or {}).get("name", "?")
    message = str(status.get("message") or "")
    lower = message.lower()
    if "ephemeral-storage" in lower or "disk" in lower:
        return PodProblem(
            Reason.NODE_DISK_PRESSURE, f'pod "{name}" evicted due to node disk pressure: {message}'
        )
    if "memory" in lower:
        return PodProblem(
            Reason.NODE_MEMORY_PRESSURE,
            f'pod "{name}" evicted due to node memory pressure: {message}',
        )
    return PodProblem(Reason.POD_EVICTED, f'pod "{name}" was evicted: {message}')


def _unschedulable(pod: Mapping[str, Any]) -> PodProblem | None:
    status = pod.get("status") or {}
    if status.get("phase", "Pending") != "Pending":
        return None
    for cond in status.get("conditions") or ():
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            name = (pod.get("metadata") or {}).get("name", "?")
            return PodProblem(
                Reason.UNSCHEDULABLE, f'pod "{name}" is unschedulable: {cond.get("message", "")}'
            )
    return None


def diagnose_pods(pods: Iterable[Mapping[str, Any]]) -> PodProblem | None:
    """The first real problem of ``pods`` in upstream's order, or None (starting, or running
    but not ready yet, is no problem)."""
    ordered = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", ""))
    for reason, check in _CONTAINER_CHECKS:
        for pod in ordered:
            for cs in _containers(pod):
                found = check(cs)
                if found is not None:
                    return PodProblem(reason, _truncate(found))
    for pod_check in (_evicted, _unschedulable):
        for pod in ordered:
            problem = pod_check(pod)
            if problem is not None:
                return PodProblem(problem.reason, _truncate(problem.message))
    return None


def restart_note(pods: Iterable[Mapping[str, Any]]) -> str:
    """Why a running Pod is not ready when its container was restarted (its process ended and
    the kubelet started it again): ``container "x" restarted after exit code 137 (Error)``, or
    ``""``. No problem of :func:`diagnose_pods`: the container is running again."""
    ordered = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", ""))
    for pod in ordered:
        for cs in (pod.get("status") or {}).get("containerStatuses") or ():
            last = _last(cs)
            if cs.get("ready") or not last or "running" not in (cs.get("state") or {}):
                continue
            reason = f" ({last['reason']})" if last.get("reason") else ""
            count = int(cs.get("restartCount") or 0)
            return _truncate(
                f"container {_name(cs)} of pod {(pod.get('metadata') or {}).get('name', '?')} "
                f"restarted after exit code {last.get('exitCode')}{reason}; "
                f"{count} restart{'' if count == 1 else 's'}"
            )
    return ""
