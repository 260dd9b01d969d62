"""Which Events a Workspace gets: one per condition transition, Warning for failures.

Controller layer. ``kubectl describe workspace`` tells the story from these: a condition that
changed status or reason is news; the first pending state of a new Workspace and the guide's
``WorkspaceReady`` (the same truth as ``WorkspaceSucceeded``) are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from kaito.api import Condition, find_condition
from kaito.api import constants as c
from kaito.engine import EventRecorder
from kaito_provisioners import reasons as provisioning

__all__ = (
    "PROVISIONING_PROBLEMS",
    "WARNING_REASONS",
    "WORKLOAD_CREATED",
    "WORKLOAD_UPDATED",
    "WORKSPACE_DELETED",
    "record_transitions",
    "transition_events",
)

WORKLOAD_CREATED: Final = "WorkloadCreated"
WORKLOAD_UPDATED: Final = "WorkloadUpdated"
WORKSPACE_DELETED: Final = "WorkspaceDeleted"

#: Provisioning reasons that are a problem (a Warning Event), not progress.
PROVISIONING_PROBLEMS: Final = frozenset(provisioning.FIXES) - {
    provisioning.NODE_CLAIM_NOT_READY,
    provisioning.NODE_NOT_READY,
    provisioning.NODE_PLUGINS_NOT_READY,
    provisioning.NODES_DELETING,
}

#: Condition reasons whose transitions are Warning events (except on ``NodesReady``).
WARNING_REASONS: Final = frozenset(
    {
        c.Reason.IMAGE_PULL_ERROR,
        c.Reason.CRASH_LOOP_BACK_OFF,
        c.Reason.OOM_KILLED,
        c.Reason.CONTAINER_START_ERROR,
        c.Reason.POD_EVICTED,
        c.Reason.NODE_DISK_PRESSURE,
        c.Reason.NODE_MEMORY_PRESSURE,
        c.Reason.UNSCHEDULABLE,
        c.Reason.TUNING_FAILED,
        c.Reason.FAILED,
        "InvalidWorkspace",
        "NodeNotReady",
        *PROVISIONING_PROBLEMS,
    }
)
_PENDING: Final = frozenset(
    {
        c.Reason.INFERENCE_PENDING,
        c.Reason.PENDING,
        c.Reason.TUNING_PENDING,
        c.Reason.RESOURCE_NOT_READY,
    }
)

EventType = Literal["Normal", "Warning"]


def transition_events(
    before: Iterable[Condition] | None, after: Iterable[Condition] | None
) -> list[tuple[str, str, EventType]]:
    """``(reason, message, type)`` of each Event the change from ``before`` to ``after`` makes."""
    before = tuple(before or ())
    out: list[tuple[str, str, EventType]] = []
    for cond in after or ():
        if cond.type == c.ConditionType.WORKSPACE_READY:
            continue  # the same truth as WorkspaceSucceeded: one event is enough
        old = find_condition(before, cond.type)
        if old is not None and (old.status, old.reason) == (cond.status, cond.reason):
            continue
        if cond.status != "True" and cond.reason in _PENDING and old is None:
            continue  # the first pending state of a new workspace is not news
        warn = cond.reason in WARNING_REASONS and cond.type != c.ConditionType.NODES_READY
        out.append(
            (
                f"{cond.type}{'True' if cond.status == 'True' else 'False'}",
                f"{cond.reason}: {cond.message}",
                "Warning" if warn else "Normal",
            )
        )
    return out


async def record_transitions(
    events: EventRecorder,
    obj: Mapping[str, Any],
    before: Iterable[Condition] | None,
    after: Iterable[Condition] | None,
) -> None:
    """Record the Events of :func:`transition_events` about ``obj`` (the Workspace's JSON)."""
    for reason, message, kind in transition_events(before, after):
        await events.event(dict(obj), reason, message, type=kind)
