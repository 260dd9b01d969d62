"""Engine micro-benchmarks: work queue throughput, informer event rate, cache memory.

Each figure is measured side by side with its baseline in one run (fixed seed, a warm-up,
median of N): the queue against a bare ``asyncio.Queue``, the informer and its store against
a plain dict of decoded objects.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from kaito.engine import (
    EnqueueHandler,
    Informer,
    ObjectKey,
    ObjectList,
    Resource,
    Store,
    WatchEvent,
    WorkQueue,
)

JSON = dict[str, Any]
RUNS = 5
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")


def median_of(runs: int, func: Callable[[], float]) -> float:
    func()  # warm-up
    return statistics.median(func() for _ in range(runs))


def sample_object(i: int, rng: random.Random) -> JSON:
    """A custom object shaped like a small CR with a status, as an API server returns it."""
    name = f"widget-{i:06d}"
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": name,
            "namespace": f"team-{i % 7}",
            "uid": f"{rng.getrandbits(128):032x}",
            "resourceVersion": str(1000 + i),
            "generation": 1,
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "widget", "example.com/tier": "gold"},
            "annotations": {"example.com/owner": "platform-team"},
        },
        "spec": {
            "size": rng.randint(1, 8),
            "image": "registry.example.com/widgets/server:1.2.3",
            "replicas": 2,
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        },
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Reconciled",
                    "lastTransitionTime": "2026-11-25T10:00:01Z",
                }
            ],
        },
    }


# -- queue --------------------------------------------------------------------------------


async def _queue_ours(n: int, workers: int) -> float:
    queue: WorkQueue[int] = WorkQueue("bench")
    keys = list(range(n // 2))
    processed = 0
    finished = asyncio.Event()

    async def worker() -> None:
        nonlocal processed
        while True:
            key = await queue.get()
            processed += 1
            queue.done(key)
            if processed >= n // 2:
                finished.set()
                return
            await asyncio.sleep(0)

    start = time.perf_counter()
    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    for i in range(0, len(keys), 500):
        for key in keys[i : i + 500]:
            queue.add(key)
            queue.add(key)  # every key twice: the second is deduplicated
        await asyncio.sleep(0)
    await finished.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (n // 2) / (time.perf_counter() - start)


async def _queue_baseline(n: int, workers: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    keys = list(range(n // 2))
    processed = 0
    finished = asyncio.Event()

    async def worker() -> None:
        nonlocal processed
        while True:
            key = await queue.get()
            processed += 1
            queue.task_done()
            _ = key
            if processed >= n // 2:
                finished.set()
                return
            await asyncio.sleep(0)

    start = time.perf_counter()
    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    for i in range(0, len(keys), 500):
        for key in keys[i : i + 500]:
            queue.put_nowait(key)  # no dedup: each key once
        await asyncio.sleep(0)
    await finished.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (n // 2) / (time.perf_counter() - start)


def bench_queue(n: int = 200_000, workers: int = 4) -> str:
    ours = median_of(RUNS, lambda: asyncio.run(_queue_ours(n, workers)))
    base = median_of(RUNS, lambda: asyncio.run(_queue_baseline(n, workers)))
    return (
        f"queue_add_get_done: ours={ours / 1e3:.0f}k items/s "
        f"baseline[asyncio.Queue]={base / 1e3:.0f}k items/s ratio={ours / base:.2f}x "
        f"(ours adds every key twice and deduplicates; {workers} workers)"
    )


# -- informer -----------------------------------------------------------------------------


class _Replay:
    """A ListWatcher that lists nothing and replays prepared events once."""

    def __init__(self, events: list[WatchEvent], done: anyio.Event) -> None:
        self.events = events
        self.done = done

    async def list(self, resource: Resource, **_: Any) -> ObjectList:
        return ObjectList([], "1")

    @asynccontextmanager
    async def watch(self, resource: Resource, **_: Any) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        async def stream() -> AsyncIterator[WatchEvent]:
            for event in self.events:
                yield event
            self.done.set()
            await anyio.sleep_forever()

        yield stream()


def _events(n: int) -> list[WatchEvent]:
    rng = random.Random(7)
    objs = [sample_object(i, rng) for i in range(n)]
    events = [WatchEvent("ADDED", o) for o in objs]
    for i, o in enumerate(objs):
        changed = json.loads(json.dumps(o))
        changed["metadata"]["resourceVersion"] = str(10**6 + i)
        changed["status"]["observedGeneration"] = 2
        events.append(WatchEvent("MODIFIED", changed))
    return events


async def _informer_ours(events: list[WatchEvent]) -> float:
    done = anyio.Event()
    informer = Informer(_Replay(events, done), WIDGETS)
    queue: WorkQueue[ObjectKey] = WorkQueue("bench")
    informer.add_handler(EnqueueHandler(queue))
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await done.wait()
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    return len(events) / elapsed


async def _informer_baseline(events: list[WatchEvent]) -> float:
    cache: dict[ObjectKey, JSON] = {}
    queue: WorkQueue[ObjectKey] = WorkQueue("bench")
    start = time.perf_counter()
    for event in events:
        meta = event.object["metadata"]
        key = ObjectKey(meta["namespace"], meta["name"])
        cache[key] = event.object
        queue.add(key)
    await anyio.lowlevel.checkpoint()
    return len(events) / (time.perf_counter() - start)


def bench_informer(n: int = 20_000) -> str:
    events = _events(n)
    ours = median_of(RUNS, lambda: anyio.run(_informer_ours, events))
    base = median_of(RUNS, lambda: anyio.run(_informer_baseline, events))
    return (
        f"informer_event_rate: ours={ours / 1e3:.0f}k events/s "
        f"baseline[plain dict + enqueue]={base / 1e3:.0f}k events/s ratio={ours / base:.2f}x "
        "(ours: JSON text in a namespace-indexed store; the baseline keeps the dicts)"
    )


def _measure(build: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def bench_memory(n: int = 20_000) -> str:
    rng = random.Random(11)
    wire = [json.dumps(sample_object(i, rng), separators=(",", ":")) for i in range(n)]
    raw = sum(len(w) for w in wire) / n

    def ours() -> object:
        store = Store()
        for text in wire:
            store.upsert(json.loads(text))
        return store

    def baseline() -> object:
        cache: dict[ObjectKey, JSON] = {}
        for text in wire:
            obj = json.loads(text)
            meta = obj["metadata"]
            cache[ObjectKey(meta["namespace"], meta["name"])] = obj
        return cache

    ours_b = statistics.median(_measure(ours) for _ in range(3)) / n
    base_b = statistics.median(_measure(baseline) for _ in range(3)) / n
    return (
        f"cache_memory_per_object: ours={ours_b:.0f} B/object "
        f"baseline[plain dict of decoded objects]={base_b:.0f} B/object "
        f"ratio={ours_b / base_b:.2f}x "
        f"raw_json={raw:.0f} B ours/raw={ours_b / raw:.2f}x (target <= 2x)"
    )


def run() -> list[str]:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    return [bench_queue(), bench_informer(), bench_memory()]
