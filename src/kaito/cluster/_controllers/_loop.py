"""A minimal level-triggered loop for the simulated controllers: store commits map to keys, a
deduplicating queue feeds one worker, failures retry with capped backoff."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskGroup

from kaito.cluster._store import GroupResource, Storage, StorageEvent

__all__ = ("ControlLoop", "KeyQueue", "start_control_loop")

log = structlog.get_logger(__name__)


class KeyQueue:
    """FIFO of keys where a key already waiting is not added twice."""

    def __init__(self) -> None:
        self._order: list[Hashable] = []
        self._waiting: set[Hashable] = set()
        self._wakeup = anyio.Event()

    def add(self, key: Hashable) -> None:
        """Enqueue ``key`` unless it is already waiting."""
        if key in self._waiting:
            return
        self._waiting.add(key)
        self._order.append(key)
        self._wakeup.set()

    async def get(self) -> Hashable:
        """The oldest waiting key."""
        while not self._order:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
        key = self._order.pop(0)
        self._waiting.discard(key)
        return key

    def __len__(self) -> int:
        return len(self._order)


class ControlLoop(Protocol):
    """Protocol: one simulated controller."""

    name: str

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        """Keys to reconcile after a commit (called synchronously; keep it cheap)."""
        ...

    async def initial_keys(self) -> Iterable[Hashable]:
        """Keys to reconcile at start (objects stored before the controller ran)."""
        ...

    async def reconcile(self, key: Hashable) -> float | None:
        """Converge one key; return seconds to check again, or ``None``."""
        ...


async def _delayed_add(queue: KeyQueue, key: Hashable, delay: float) -> None:
    await anyio.sleep(delay)
    queue.add(key)


async def _work(tasks: TaskGroup, reconciler: ControlLoop, queue: KeyQueue) -> None:
    failures: dict[Hashable, int] = {}
    for key in await reconciler.initial_keys():
        queue.add(key)
    while True:
        key = await queue.get()
        try:
            again = await reconciler.reconcile(key)
        except Exception as error:
            count = failures[key] = failures.get(key, 0) + 1
            delay = min(0.005 * 2**count, 2.0)
            log.debug(
                "sim_reconcile_failed",
                controller=reconciler.name,
                key=str(key),
                error=str(error),
                retry_in=delay,
            )
            tasks.start_soon(_delayed_add, queue, key, delay)
            continue
        failures.pop(key, None)
        if again is not None:
            tasks.start_soon(_delayed_add, queue, key, again)


def start_control_loop(tasks: TaskGroup, store: Storage, reconciler: ControlLoop) -> KeyQueue:
    """Subscribe ``reconciler`` to store commits and start its worker in ``tasks``."""
    queue = KeyQueue()

    def on_commit(gr: GroupResource, event: StorageEvent) -> None:
        for key in reconciler.keys_for(gr, event):
            queue.add(key)

    remove = store.add_listener(on_commit)

    async def run() -> None:
        try:
            await _work(tasks, reconciler, queue)
        finally:
            remove()

    tasks.start_soon(run, name=f"sim-{reconciler.name}")
    return queue
