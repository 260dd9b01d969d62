"""The in-memory store: versions, optimistic concurrency, history window, watches."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from kaito.cluster import GroupResource, MemoryStorage, ObjectIndex
from kaito.cluster._json import loads
from kaito.cluster._store import (
    ConflictError,
    EventType,
    ExpiredError,
    KeyExistsError,
    TooLargeResourceVersionError,
)

pytestmark = pytest.mark.anyio

GR = GroupResource("testing.kaito.sh", "gadgets")


def obj(name: str, namespace: str = "ns", **extra: Any) -> tuple[dict[str, Any], ObjectIndex]:
    body = {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, **extra}
    return body, ObjectIndex(namespace, name, f"uid-{name}")


async def test_every_write_gets_a_higher_cluster_wide_version() -> None:
    store = MemoryStorage()
    start = store.resource_version
    a = await store.create(GR, *obj("a"))
    b = await store.create(GroupResource("", "pods"), *obj("b"))
    body, index = obj("a", spec=1)
    a2 = await store.update(GR, body, index, a.rv)
    assert start < a.rv < b.rv < a2.rv == store.resource_version
    assert loads(a2.data)["metadata"]["resourceVersion"] == str(a2.rv)


async def test_create_of_an_existing_key_and_stale_update_are_refused() -> None:
    store = MemoryStorage()
    first = await store.create(GR, *obj("a"))
    with pytest.raises(KeyExistsError):
        await store.create(GR, *obj("a"))
    await store.update(GR, *obj("a"), first.rv)
    with pytest.raises(ConflictError) as caught:
        await store.update(GR, *obj("a"), first.rv)
    assert caught.value.current.rv > first.rv


async def test_list_is_sorted_by_key_and_filtered_by_namespace() -> None:
    store = MemoryStorage()
    for namespace, name in [("b", "x"), ("a", "z"), ("a", "y"), ("a-b", "w")]:
        await store.create(GR, *obj(name, namespace))
    everything = await store.list(GR, None)
    # Keys sort as etcd keys do ("a-b/w" < "a/y" because "-" < "/").
    assert [(o.namespace, o.name) for o in everything.items] == [
        ("a-b", "w"),
        ("a", "y"),
        ("a", "z"),
        ("b", "x"),
    ]
    assert [o.name for o in (await store.list(GR, "a")).items] == ["y", "z"]
    assert everything.rv == store.resource_version


async def test_watch_replays_history_after_a_version_then_follows_live_changes() -> None:
    store = MemoryStorage()
    a = await store.create(GR, *obj("a"))
    b = await store.create(GR, *obj("b"))
    watch = store.watch(GR, None, a.rv)
    first = await watch.next_batch()
    assert first is not None
    assert [(e.type, e.obj.name) for e in first] == [(EventType.ADDED, "b")]
    await store.delete(GR, *obj("b"), b.rv)
    second = await watch.next_batch()
    assert second is not None
    assert [(e.type, e.obj.name) for e in second] == [(EventType.DELETED, "b")]
    assert second[0].prev is not None and second[0].prev.rv == b.rv
    watch.close()
    assert await watch.next_batch() is None


async def test_versions_older_than_the_window_expire() -> None:
    store = MemoryStorage(history_window=2)
    first = await store.create(GR, *obj("a"))
    for name in "bcd":
        await store.create(GR, *obj(name))
    with pytest.raises(ExpiredError) as caught:
        store.watch(GR, None, first.rv)
    assert "too old resource version" in str(caught.value)
    with pytest.raises(TooLargeResourceVersionError):
        store.watch(GR, None, store.resource_version + 10)


async def test_compaction_expires_everything_before_it() -> None:
    store = MemoryStorage()
    a = await store.create(GR, *obj("a"))
    await store.create(GR, *obj("b"))
    await store.compact()
    with pytest.raises(ExpiredError):
        store.watch(GR, None, a.rv)
    store.watch(GR, None, store.resource_version).close()


async def test_terminate_watches_ends_the_stream_and_listeners_see_every_commit() -> None:
    store = MemoryStorage()
    seen: list[tuple[GroupResource, str]] = []
    remove = store.add_listener(lambda gr, event: seen.append((gr, event.obj.name)))
    watch = store.watch(GR, "ns", store.resource_version)
    await store.create(GR, *obj("a"))
    remove()
    await store.create(GR, *obj("b"))
    assert seen == [(GR, "a")]
    assert store.terminate_watches(GR) == 1
    batch = await watch.next_batch()
    assert batch is None


async def test_a_waiting_watcher_wakes_up_on_commit() -> None:
    store = MemoryStorage()
    watch = store.watch(GR, None, store.resource_version)
    received: list[str] = []

    async def consume() -> None:
        batch = await watch.next_batch()
        assert batch is not None
        received.extend(e.obj.name for e in batch)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        await store.create(GR, *obj("a"))
    assert received == ["a"]
