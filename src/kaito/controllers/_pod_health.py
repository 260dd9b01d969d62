"""Why a workload's pods are not running, in upstream's words (ImagePullError, OOM, ...).

Controller layer (pure functions over Pod and Node JSON). A Workspace must never report ready
while its pod crash-loops: these reasons feed ``InferenceReady=False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from kaito.api.constants import Reason

__all__ = ("PodProblem", "diagnose_pods")

_IMAGE_PULL: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
_START: Final = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
_MAX_MESSAGE: Final = 600


@attrs.frozen
class PodProblem:
    """The most telling problem among a workload's pods: a condition reason and a message."""

    reason: str
    message: str


def _statuses(pod: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    status = pod.get("status") or {}
    for kind in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(kind) or ():
            yield kind, cs


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _container_problem(pod_name: str, cs: Mapping[str, Any]) -> PodProblem | None:
    name = cs.get("name", "?")
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    where = f"pod {pod_name} container {name}"
    if waiting.get("reason") in _IMAGE_PULL:
        return PodProblem(
            Reason.IMAGE_PULL_ERROR,
            _short(f"{where} cannot pull its image: {waiting.get('message') or waiting['reason']}"),
        )
    if "OOMKilled" in (terminated.get("reason"), last.get("reason")):
        return PodProblem(
            Reason.OOM_KILLED,
            f"{where} was killed for running out of memory (OOMKilled); "
            "use a larger instance type or lower max-model-len",
        )
    if waiting.get("reason") == "CrashLoopBackOff":
        detail = last.get("message") or last.get("reason") or waiting.get("message") or ""
        code = last.get("exitCode")
        exit_text = f" (exit code {code})" if code is not None else ""
        return PodProblem(
            Reason.CRASH_LOOP_BACK_OFF,
            _short(f"{where} keeps crashing{exit_text}: {detail}".rstrip(": ")),
        )
    if waiting.get("reason") in _START:
        return PodProblem(
            Reason.CONTAINER_START_ERROR,
            _short(f"{where} cannot start: {waiting.get('message') or waiting['reason']}"),
        )
    return None


def _node_problem(
    pod: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]
) -> PodProblem | None:
    node_name = (pod.get("spec") or {}).get("nodeName")
    node = nodes.get(node_name or "")
    if node is None:
        return None
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "DiskPressure":
            return PodProblem(Reason.NODE_DISK_PRESSURE, f"node {node_name} is under disk pressure")
        if cond.get("type") == "MemoryPressure":
            return PodProblem(
                Reason.NODE_MEMORY_PRESSURE, f"node {node_name} is under memory pressure"
            )
    return None


def diagnose_pods(
    pods: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]] | None = None
) -> PodProblem | None:
    """The first real problem of ``pods`` (evicted, unschedulable, image, crash, OOM...), or None.

    A pod that is merely starting (pulling, ContainerCreating, not yet ready) is not a problem.
    """
    nodes = nodes or {}
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        if status.get("reason") == "Evicted":
            return PodProblem(
                Reason.POD_EVICTED, _short(f"pod {name} was evicted: {status.get('message', '')}")
            )
        for cond in status.get("conditions") or ():
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                return PodProblem(
                    Reason.UNSCHEDULABLE,
                    _short(f"pod {name} cannot be scheduled: {cond.get('message', '')}"),
                )
        for _, cs in _statuses(pod):
            problem = _container_problem(name, cs)
            if problem is not None:
                return problem
        problem = _node_problem(pod, nodes)
        if problem is not None:
            return problem
    return None
