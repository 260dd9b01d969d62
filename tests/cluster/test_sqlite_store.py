"""The SQLite store: the in-memory store's semantics, and everything still there after a restart."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kaito.cluster import GroupResource, MemoryStorage, ObjectIndex, SqliteStorage, start_cluster
from kaito.cluster._json import loads
from kaito.cluster._store import (
    ConflictError,
    EventType,
    ExpiredError,
    KeyExistsError,
    KeyNotFoundError,
)

pytestmark = pytest.mark.anyio

GR = GroupResource("testing.kaito.sh", "gadgets")
PODS = GroupResource("", "pods")


def obj(
    name: str, namespace: str = "ns", labels: dict[str, str] | None = None, **extra: Any
) -> tuple[dict[str, Any], ObjectIndex]:
    body = {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, **extra}
    return body, ObjectIndex(namespace, name, f"uid-{name}", labels or {})


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryStorage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    opened = await SqliteStorage.open(tmp_path / "state.db")
    try:
        yield opened
    finally:
        await opened.close()


async def test_both_stores_version_refuse_stale_writes_and_replay_watches(
    store: MemoryStorage,
) -> None:
    start = store.resource_version
    a = await store.create(GR, *obj("a"))
    b = await store.create(PODS, *obj("b"))
    a2 = await store.update(GR, *obj("a", spec=1), a.rv)
    assert start < a.rv < b.rv < a2.rv == store.resource_version
    assert loads(a2.data)["metadata"]["resourceVersion"] == str(a2.rv)
    with pytest.raises(KeyExistsError):
        await store.create(GR, *obj("a"))
    with pytest.raises(ConflictError):
        await store.update(GR, *obj("a"), a.rv)
    with pytest.raises(KeyNotFoundError):
        await store.delete(GR, *obj("nobody"), 1)
    watch = store.watch(GR, None, a.rv)
    await store.delete(GR, *obj("a"), a2.rv)
    batch = await watch.next_batch()
    assert batch is not None
    assert [(e.type, e.obj.name) for e in batch] == [
        (EventType.MODIFIED, "a"),
        (EventType.DELETED, "a"),
    ]
    assert batch[1].prev is not None and batch[1].prev.rv == a2.rv
    watch.close()


async def test_a_reopened_store_has_the_objects_versions_and_history(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SqliteStorage.open(path)
    kept = await store.create(GR, *obj("kept", labels={"app": "x"}, spec={"n": 1}))
    gone = await store.create(GR, *obj("gone"))
    changed = await store.update(GR, *obj("kept", labels={"app": "y"}, spec={"n": 2}), kept.rv)
    deleted = await store.delete(GR, *obj("gone"), gone.rv)
    last = store.resource_version
    await store.close()

    again = await SqliteStorage.open(path)
    try:
        assert again.resource_version == last
        items = (await again.list(GR, "ns")).items
        assert [(o.name, o.rv, dict(o.labels)) for o in items] == [
            ("kept", changed.rv, {"app": "y"})
        ]
        assert loads(items[0].data)["spec"] == {"n": 2}
        # The history survives: a watch from the first write replays what followed.
        watch = again.watch(GR, "ns", kept.rv)
        batch = await watch.next_batch()
        assert batch is not None
        assert [(e.type, e.obj.name, e.obj.rv) for e in batch] == [
            (EventType.ADDED, "gone", gone.rv),
            (EventType.MODIFIED, "kept", changed.rv),
            (EventType.DELETED, "gone", deleted.rv),
        ]
        assert batch[1].prev is not None and dict(batch[1].prev.labels) == {"app": "x"}
        watch.close()
        # Versions keep increasing; stale writes are still refused.
        newer = await again.update(GR, *obj("kept", spec={"n": 3}), changed.rv)
        assert newer.rv == last + 1
        with pytest.raises(ConflictError):
            await again.update(GR, *obj("kept"), changed.rv)
    finally:
        await again.close()


async def test_compacted_history_stays_compacted_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SqliteStorage.open(path)
    first = await store.create(GR, *obj("a"))
    await store.update(GR, *obj("a", spec=1), first.rv)
    compacted = await store.compact()
    await store.close()
    again = await SqliteStorage.open(path)
    try:
        with pytest.raises(ExpiredError):
            again.watch(GR, None, first.rv)
        assert again.compacted_version == compacted
        again.watch(GR, None, compacted).close()
    finally:
        await again.close()


async def test_a_closed_store_refuses_writes_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path / "state.db")
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.create(GR, *obj("late"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        await SqliteStorage.open(junk)


async def test_a_cluster_restarted_on_its_file_keeps_objects_and_cluster_ips(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = await SqliteStorage.open(path)
    async with start_cluster(store=store, network=True) as cluster:
        await cluster.create_namespace("team")
        service = await cluster.client.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "team"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
            }
        )
        await cluster.client.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "team"},
                "data": {"k": "v"},
            }
        )
    await store.close()

    store = await SqliteStorage.open(path)
    try:
        async with start_cluster(store=store, network=True) as cluster:
            again = await cluster.client.get("v1", "Service", "web", "team")
            assert again["spec"]["clusterIP"] == service["spec"]["clusterIP"]
            config = await cluster.client.get("v1", "ConfigMap", "settings", "team")
            assert config["data"] == {"k": "v"}
            other = await cluster.client.create(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "other", "namespace": "team"},
                    "spec": {"selector": {"app": "other"}, "ports": [{"port": 80}]},
                }
            )
            assert other["spec"]["clusterIP"] != service["spec"]["clusterIP"]
            assert int(other["metadata"]["resourceVersion"]) > int(
                again["metadata"]["resourceVersion"]
            )
    finally:
        await store.close()
