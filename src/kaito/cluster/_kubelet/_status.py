"""A Pod's status as the kubelet computes it from its containers: container statuses, the phase
and the kubelet's conditions (pure functions over plain data, following the kubelet's rules)."""

from __future__ import annotations

import attrs

from kaito.cluster._json import Obj

__all__ = ("ContainerState", "pod_conditions", "pod_phase")


@attrs.define
class ContainerState:
    """What the kubelet knows of one container."""

    name: str
    image: str
    init: bool = False
    state: Obj = attrs.field(factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = attrs.field(factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    image_id: str = ""

    @property
    def waiting(self) -> Obj | None:
        return self.state.get("waiting")

    @property
    def running(self) -> Obj | None:
        return self.state.get("running")

    @property
    def terminated(self) -> Obj | None:
        return self.state.get("terminated")

    def to_status(self) -> Obj:
        """The ``containerStatuses`` entry."""
        status: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def pod_phase(restart_policy: str, init: list[ContainerState], main: list[ContainerState]) -> str:
    """The Pod's phase from its containers (the kubelet's ``getPhase``)."""
    pending_init = 0
    failed_init = 0
    for c in init:
        terminated = c.terminated
        last = c.last_state.get("terminated")
        if c.running is not None:
            pending_init += 1
        elif terminated is not None:
            failed_init += terminated.get("exitCode", 0) != 0
        elif c.waiting is not None and last is not None:
            failed_init += last.get("exitCode", 0) != 0
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for c in main:
        terminated = c.terminated
        if c.running is not None:
            running += 1
        elif terminated is not None:
            stopped += 1
            succeeded += terminated.get("exitCode", 0) == 0
        elif c.last_state.get("terminated") is not None:
            stopped += 1
        else:
            waiting += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    started_any = any(
        c.running is not None or c.terminated is not None or c.last_state for c in main
    )
    if (pending_init and not started_any) or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {"type": kind, "status": "True" if ok else "False"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_conditions(
    *,
    phase: str,
    sandbox_ready: bool,
    init: list[ContainerState],
    main: list[ContainerState],
    readiness_gates: list[str] | None = None,
    conditions: list[Obj] | None = None,
) -> list[Obj]:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady and PodScheduled, with the
    kubelet's reasons and messages (``containers with unready status: [main]``)."""
    result = [_condition("PodReadyToStartContainers", sandbox_ready)]
    incomplete = [c.name for c in init if not c.ready]
    regular_started = any(c.running is not None or c.terminated is not None for c in main)
    if phase == "Succeeded":
        result.append(_condition("Initialized", True, "PodCompleted"))
    elif incomplete and not regular_started:
        result.append(
            _condition(
                "Initialized",
                False,
                "ContainersNotInitialized",
                f"containers with incomplete status: {_go_list(incomplete)}",
            )
        )
    else:
        result.append(_condition("Initialized", True))
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        ready = _condition("ContainersReady", False, reason)
    else:
        unready = [c.name for c in main if not c.ready]
        ready = (
            _condition(
                "ContainersReady",
                False,
                "ContainersNotReady",
                f"containers with unready status: {_go_list(unready)}",
            )
            if unready
            else _condition("ContainersReady", True)
        )
    pod_ready = {**ready, "type": "Ready"}
    if ready["status"] == "True" and readiness_gates:
        existing = {c.get("type"): c for c in conditions or []}
        messages = []
        for gate in readiness_gates:
            current = existing.get(gate)
            if current is None:
                messages.append(
                    f'corresponding condition of pod readiness gate "{gate}" does not exist.'
                )
            elif current.get("status") != "True":
                messages.append(
                    f'the status of pod readiness gate "{gate}" is not "True", but '
                    f"{current.get('status')}"
                )
        if messages:
            pod_ready = _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(messages))
    result += [pod_ready, ready, _condition("PodScheduled", True)]
    return result
