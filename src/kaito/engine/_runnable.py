"""Engine layer: runnables, the long-running parts of an operator that a Manager starts and stops.

As controller-runtime's ``Runnable`` and ``LeaderElectionRunnable``: a runnable that needs the
lease (the default) runs only on the elected replica, like the controllers; one that does not
(a webhook server, which every replica serves) runs on every replica from the manager's start.
The manager cancels them all when it stops.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.abc

__all__ = ("LeaderElectionRunnable", "Runnable", "needs_leader_election")


@runtime_checkable
class Runnable(Protocol):
    """Protocol: runs until cancelled; calls ``task_status.started()`` once it is serving.

    The manager waits for that call before it counts as started, so a server is listening by
    then. Cancellation is the only way it is stopped; clean up in ``finally``.
    """

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None: ...


@runtime_checkable
class LeaderElectionRunnable(Protocol):
    """Protocol: a runnable that says whether it needs the lease (without it: it does)."""

    def needs_leader_election(self) -> bool: ...


def needs_leader_election(runnable: object) -> bool:
    """Whether ``runnable`` runs only on the leader: its own answer, else True."""
    if isinstance(runnable, LeaderElectionRunnable):
        return runnable.needs_leader_election()
    return True
