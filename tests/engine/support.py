"""Helpers shared by the engine tests: a recording handler, and quiescence-driven waiting for
the pure (no I/O) tests of the queue, controller and clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from kaito.engine import FakeClock

JSON = dict[str, Any]


class Recorder:
    """An event handler that records ``(event, namespace/name, resourceVersion)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    @staticmethod
    def _ident(obj: JSON) -> tuple[str, str]:
        meta = obj["metadata"]
        return f"{meta.get('namespace', '')}/{meta['name']}", meta.get("resourceVersion", "")

    def on_add(self, obj: JSON) -> None:
        self.events.append(("add", *self._ident(obj)))

    def on_update(self, old: JSON, new: JSON) -> None:
        self.events.append(("update", *self._ident(new)))

    def on_delete(self, obj: JSON) -> None:
        self.events.append(("delete", *self._ident(obj)))

    def kinds(self) -> list[tuple[str, str]]:
        return [(kind, name) for kind, name, _ in self.events]


async def settle(clock: FakeClock, until: Callable[[], bool], *, max_steps: int = 100) -> None:
    """Let tasks run; step the fake clock to the next timer while ``until()`` is false."""
    for _ in range(max_steps):
        await anyio.wait_all_tasks_blocked()
        if until():
            return
        if clock.advance_to_next() == 0.0 and clock.next_deadline is None:
            await anyio.wait_all_tasks_blocked()
            if until():
                return
            raise AssertionError("nothing left to wait for, and the condition is still false")
    raise AssertionError(f"condition still false after {max_steps} clock steps")
