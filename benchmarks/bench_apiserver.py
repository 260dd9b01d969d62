"""The in-process API server (``kaito.cluster``): create+watch throughput of 10,000 custom objects,
status-patch throughput, LIST latency and memory per stored object.

The server runs in a child process (so client and server can use both cores); the client is
aiohttp with 32 requests in flight, holding a watch open. Every figure is printed against a plain
dict store with no HTTP doing the same work in one process (decode, store, notify, encode).
Seeded data, one warm-up pass, median of ``RUNS``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
import tracemalloc
import uuid
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

N = 10_000
WARMUP = 1_000
RUNS = 3
CONCURRENCY = 32
GROUP, VERSION, PLURAL = "bench.kaito.sh", "v1", "widgets"
BASELINE = "dict store, no HTTP"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "Widget",
            "plural": PLURAL,
            "singular": "widget",
            "listKind": "WidgetList",
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "resource": {
                                "type": "object",
                                "properties": {
                                    "instanceType": {"type": "string"},
                                    "count": {"type": "integer", "default": 1},
                                    "labelSelector": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "inference": {
                                "type": "object",
                                "properties": {
                                    "preset": {
                                        "type": "object",
                                        "properties": {"name": {"type": "string"}},
                                    }
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "state": {"type": "string"},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "type": {"type": "string"},
                                                "status": {"type": "string"},
                                                "reason": {"type": "string"},
                                                "message": {"type": "string"},
                                                "lastTransitionTime": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(i: int) -> dict[str, Any]:
    """The object created per iteration (a Workspace-shaped custom object)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": f"w-{i:05d}", "labels": {"app": "bench", "shard": str(i % 7)}},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"apps": "phi-4"}},
        },
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    }


STATUS = {
    "status": {
        "state": "Ready",
        "conditions": [
            {
                "type": "InferenceReady",
                "status": "True",
                "reason": "Ready",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
}


# -- the server process -----------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    import logging

    import anyio
    import structlog

    from kaito.cluster import Controllers, start_cluster

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def main() -> None:
        async with start_cluster(
            controllers=Controllers.api_only(), crds=[CRD], history_window=4 * N
        ) as cluster:
            conn.send(cluster.url)
            await anyio.to_thread.run_sync(conn.recv)

    anyio.run(main)


# -- the client ---------------------------------------------------------------------------------


async def _watch(
    session: aiohttp.ClientSession,
    path: str,
    *,
    rv: str,
    wanted: str,
    count: int,
    done: asyncio.Event,
) -> None:
    seen = 0
    async with session.get(path, params={"watch": "true", "resourceVersion": rv}) as response:
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if json.loads(line)["type"] == wanted:
                    seen += 1
            if seen >= count:
                done.set()
                return


async def _round(url: str, namespace: str, count: int) -> tuple[float, float, float]:
    """One pass: (create+watch objects/s, status patches/s, LIST ms) in a fresh namespace."""
    async with aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=CONCURRENCY)
    ) as session:
        ns_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        async with session.post("/api/v1/namespaces", json=ns_body) as response:
            assert response.status == 201, await response.text()
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        async with session.get(path) as response:
            rv = (await response.json())["metadata"]["resourceVersion"]
        gate = asyncio.Semaphore(CONCURRENCY)
        bodies = [json.dumps(widget(i)).encode() for i in range(count)]
        headers = {"Content-Type": "application/json"}

        async def create(body: bytes) -> None:
            async with gate, session.post(path, data=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                await response.read()

        added = asyncio.Event()
        watcher = asyncio.create_task(
            _watch(session, path, rv=rv, wanted="ADDED", count=count, done=added)
        )
        started = time.perf_counter()
        await asyncio.gather(*(create(b) for b in bodies))
        await added.wait()
        create_rate = count / (time.perf_counter() - started)
        await watcher
        patch = json.dumps(STATUS).encode()
        merge = {"Content-Type": "application/merge-patch+json"}

        async def patch_status(i: int) -> None:
            async with (
                gate,
                session.patch(f"{path}/w-{i:05d}/status", data=patch, headers=merge) as response,
            ):
                assert response.status == 200, await response.text()
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(patch_status(i) for i in range(count)))
        patch_rate = count / (time.perf_counter() - started)
        lists = []
        for _ in range(5):
            started = time.perf_counter()
            async with session.get(path) as response:
                await response.read()
            lists.append((time.perf_counter() - started) * 1000)
        return create_rate, patch_rate, statistics.median(lists)


# -- the baseline: a plain dict store, no HTTP --------------------------------------------------


def _baseline(count: int) -> tuple[float, float, float]:
    store: dict[str, dict[str, Any]] = {}
    events: deque[bytes] = deque()
    rv = 1
    bodies = [json.dumps(widget(i)).encode() for i in range(count)]
    started = time.perf_counter()
    for body in bodies:
        obj = json.loads(body)
        rv += 1
        meta = obj["metadata"]
        meta.update(
            namespace="bench",
            uid=str(uuid.uuid4()),
            resourceVersion=str(rv),
            generation=1,
            creationTimestamp="2026-01-01T00:00:00Z",
        )
        store[meta["name"]] = obj
        events.append(json.dumps({"type": "ADDED", "object": obj}).encode())
    while events:
        json.loads(events.popleft())
    create_rate = count / (time.perf_counter() - started)
    patch = json.dumps(STATUS).encode()
    started = time.perf_counter()
    for i in range(count):
        obj = store[f"w-{i:05d}"]
        obj["status"] = json.loads(patch)["status"]
        rv += 1
        obj["metadata"]["resourceVersion"] = str(rv)
        json.dumps(obj)
    patch_rate = count / (time.perf_counter() - started)
    started = time.perf_counter()
    json.dumps({"kind": "WidgetList", "items": list(store.values())})
    list_ms = (time.perf_counter() - started) * 1000
    return create_rate, patch_rate, list_ms


# -- memory per stored object -------------------------------------------------------------------


def _memory(count: int) -> tuple[float, float]:
    import anyio

    from kaito.cluster import MemoryStorage
    from kaito.cluster._builtins import builtin_types
    from kaito.cluster._crd import crd_resource_type
    from kaito.cluster._crd_registry import CrdRegistry
    from kaito.cluster._meta import system_clock
    from kaito.cluster._resource_types import Catalog
    from kaito.cluster._rest import NoAdmission, RestApi

    async def fill() -> tuple[float, list[dict[str, Any]]]:
        store = MemoryStorage(history_window=1)
        catalog = Catalog()
        for rt in builtin_types():
            catalog.add(rt)
        catalog.add(crd_resource_type(system_clock))
        CrdRegistry(catalog).attach(store)
        rest = RestApi(store, catalog, NoAdmission(), system_clock)
        namespaces = catalog.lookup("", "v1", "namespaces")
        crds = catalog.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert namespaces is not None
        assert crds is not None
        await rest.create(
            namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}
        )
        await rest.create(crds, "", json.loads(json.dumps(CRD)))
        rt = catalog.lookup(GROUP, VERSION, PLURAL)
        assert rt is not None
        bodies = [widget(i) for i in range(count)]
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for body in bodies:
            await rest.create(rt, "bench", body)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        ours = sum(s.size_diff for s in after.compare_to(before, "filename")) / count
        stored = [json.loads(s.data) for s in (await store.list(rt.gr, None)).items]
        return ours, stored

    ours, stored = anyio.run(fill)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    plain = {o["metadata"]["name"]: json.loads(json.dumps(o)) for o in stored}
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    baseline = sum(s.size_diff for s in after.compare_to(before, "filename")) / count
    del plain
    return ours, baseline


def _line(
    name: str, ours: float, base: float, unit: str, *, what: str = BASELINE, precision: int = 0
) -> str:
    ours_text = f"{ours:.{precision}f} {unit}"
    base_text = f"{base:.{precision}f} {unit}"
    return f"{name}: ours={ours_text} baseline[{what}]={base_text} ratio={ours / base:.2f}x"


def run() -> list[str]:
    """Measure and return the result lines."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = parent.recv()
        asyncio.run(_round(url, "warmup", WARMUP))
        ours = [asyncio.run(_round(url, f"run-{i}", N)) for i in range(RUNS)]
    finally:
        parent.send("stop")
        server.join(timeout=30)
        if server.is_alive():
            server.kill()
    _baseline(WARMUP)
    base = [_baseline(N) for _ in range(RUNS)]
    memory, memory_base = _memory(N)

    def median(rows: list[tuple[float, float, float]], index: int) -> float:
        return statistics.median(row[index] for row in rows)

    return [
        _line(f"apiserver_create_watch_{N}", median(ours, 0), median(base, 0), "objects/s"),
        _line(f"apiserver_status_patch_{N}", median(ours, 1), median(base, 1), "patches/s"),
        _line(
            f"apiserver_list_{N}",
            median(ours, 2),
            median(base, 2),
            "ms",
            what="dict store json.dumps, no HTTP",
            precision=1,
        ),
        _line(
            "apiserver_memory_per_object",
            memory,
            memory_base,
            "B",
            what="dict store of parsed objects",
        ),
    ]
