from __future__ import annotations

import random

import anyio
import pytest
from structlog.testing import capture_logs

from kaito.engine.clock import FakeClock
from kaito.engine.errors import ApiError
from kaito.engine.informer import Informer, InformerFactory
from kaito.engine.keys import ObjectKey
from kaito.engine.store import OWNER_INDEX, index_by_owner_uid
from tests.engine.fakekube import FakeKube
from tests.engine.support import PODS, WIDGETS, Recorder, settle

pytestmark = pytest.mark.anyio


def server_state(kube: FakeKube) -> dict[ObjectKey, str]:
    return {k: o["metadata"]["resourceVersion"] for k, o in kube.objects[WIDGETS].items()}


def cache_state(informer: Informer) -> dict[ObjectKey, str]:
    out: dict[ObjectKey, str] = {}
    for key, obj in informer.store.items():
        out[key] = obj["metadata"]["resourceVersion"]
    return out


def make(kube: FakeKube, clock: FakeClock, **kwargs: object) -> Informer:
    return Informer(kube, WIDGETS, clock=clock, rng=random.Random(1), page_size=2, **kwargs)  # type: ignore[arg-type]


async def test_lists_pages_then_watches_and_delivers_events() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    for name in "abc":
        kube.put(WIDGETS, name, spec={"size": 1})
    informer = make(kube, clock)
    rec = Recorder()
    informer.add_handler(rec)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await informer.wait_synced()
        assert informer.has_synced
        assert rec.kinds() == [("add", "default/a"), ("add", "default/b"), ("add", "default/c")]
        assert kube.calls["list"] == 2  # two pages of two
        await settle(clock, lambda: bool(kube.watchers))
        kube.put(WIDGETS, "d")
        kube.set_field(WIDGETS, ObjectKey("default", "a"), spec={"size": 2})
        kube.remove(WIDGETS, ObjectKey("default", "b"))
        await settle(clock, lambda: len(rec.events) == 6)
        tg.cancel_scope.cancel()
    assert rec.kinds()[3:] == [
        ("add", "default/d"),
        ("update", "default/a"),
        ("delete", "default/b"),
    ]
    assert cache_state(informer) == server_state(kube)
    assert informer.store.get(ObjectKey("default", "a"))["spec"] == {"size": 2}  # type: ignore[index]


async def test_resumes_from_last_version_after_a_dropped_watch() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    kube.put(WIDGETS, "a")
    informer = make(kube, clock)
    rec = Recorder()
    informer.add_handler(rec)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await settle(clock, lambda: bool(kube.watchers))
        kube.put(WIDGETS, "b")
        await settle(clock, lambda: len(rec.events) == 2)
        seen_rv = informer.resource_version
        kube.drop_watches(error=ConnectionResetError("connection reset by peer"))
        # Changes while the watch is down must arrive once each after the resume.
        kube.set_field(WIDGETS, ObjectKey("default", "a"), spec={"v": 2})
        kube.put(WIDGETS, "c")
        kube.remove(WIDGETS, ObjectKey("default", "b"))
        await settle(
            clock, lambda: cache_state(informer) == server_state(kube) and len(rec.events) == 5
        )
        tg.cancel_scope.cancel()
    assert kube.calls["list"] == 1, "a dropped watch must resume, not relist"
    assert kube.watch_requests[-1] == seen_rv
    assert rec.kinds()[2:] == [
        ("update", "default/a"),
        ("add", "default/c"),
        ("delete", "default/b"),
    ]
    assert len(rec.events) == len(set(rec.events)), "an event was delivered twice"


async def test_relists_after_410_gone_and_reconciles_the_difference() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    for name in "ab":
        kube.put(WIDGETS, name)
    informer = make(kube, clock)
    rec = Recorder()
    informer.add_handler(rec)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(informer.run)
            await settle(clock, lambda: bool(kube.watchers))
            kube.drop_watches()
            kube.remove(WIDGETS, ObjectKey("default", "a"))
            kube.set_field(WIDGETS, ObjectKey("default", "b"), spec={"v": 9})
            kube.put(WIDGETS, "c")
            kube.compact()  # the informer's resourceVersion is now too old
            await settle(clock, lambda: kube.calls.get("list", 0) >= 2 and bool(kube.watchers))
            tg.cancel_scope.cancel()
    assert cache_state(informer) == server_state(kube)
    assert sorted(rec.kinds()[2:]) == [
        ("add", "default/c"),
        ("delete", "default/a"),
        ("update", "default/b"),
    ]
    assert any(e["event"] == "watch_expired_relisting" for e in logs)


async def test_api_errors_back_off_with_jitter_and_honour_retry_after() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    kube.put(WIDGETS, "a")
    kube.fail_next("list", ApiError(500, "InternalError", "etcd is sad"))
    kube.fail_next("list", ApiError(429, "TooManyRequests", "slow down", retry_after=40))
    kube.fail_next("list", OSError("connection refused"))
    informer = make(kube, clock)
    waits: list[float] = []
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(informer.run)
            for _ in range(3):
                await anyio.wait_all_tasks_blocked()
                waits.append(clock.advance_to_next())
            await informer.wait_synced()
            tg.cancel_scope.cancel()
    assert 0.8 <= waits[0] <= 1.6
    assert waits[1] == 40  # Retry-After beats the 1.6..3.2 s backoff
    assert 3.2 <= waits[2] <= 6.4
    failures = [e for e in logs if e["event"] == "list_watch_failed"]
    assert [e.get("status") for e in failures] == [500, 429, None]
    assert failures[2]["error_type"] == "OSError"


async def test_handler_that_raises_is_logged_and_the_informer_goes_on() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    informer = make(kube, clock)

    class Boom(Recorder):
        def on_add(self, obj: dict[str, object]) -> None:
            raise RuntimeError("handler bug")

    rec = Recorder()
    informer.add_handler(Boom())
    informer.add_handler(rec)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(informer.run)
            await settle(clock, lambda: bool(kube.watchers))
            kube.put(WIDGETS, "x")
            kube.put(WIDGETS, "y")
            await settle(clock, lambda: len(rec.events) == 2)
            tg.cancel_scope.cancel()
    errors = [e for e in logs if e["event"] == "event_handler_failed"]
    assert [e["key"] for e in errors] == ["default/x", "default/y"]
    assert informer.stats["handler_errors"] == 2


async def test_resync_redelivers_every_object_as_an_update() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    kube.put(WIDGETS, "a")
    kube.put(WIDGETS, "b")
    informer = make(kube, clock, resync_period=30.0)
    rec = Recorder()
    informer.add_handler(rec)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await settle(clock, lambda: bool(kube.watchers))
        assert clock.next_deadline == 30.0
        clock.advance(30)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert sorted(rec.kinds()[2:]) == [("update", "default/a"), ("update", "default/b")]


async def test_bookmarks_advance_the_resource_version() -> None:
    kube, clock = FakeKube(WIDGETS, PODS), FakeClock()
    informer = make(kube, clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await settle(clock, lambda: bool(kube.watchers))
        kube.put(PODS, "unrelated")  # bumps the global version, not seen by this watch
        kube.bookmark()
        await settle(clock, lambda: informer.resource_version == str(kube.rv))
        tg.cancel_scope.cancel()


async def test_late_handler_gets_the_cache_replayed_as_adds() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    kube.put(WIDGETS, "a")
    informer = make(kube, clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await informer.wait_synced()
        rec = Recorder()
        informer.add_handler(rec)
        tg.cancel_scope.cancel()
    assert rec.kinds() == [("add", "default/a")]


async def test_indexes_by_namespace_owner_and_custom_function() -> None:
    kube, clock = FakeKube(WIDGETS), FakeClock()
    owner_ref = {"uid": "u-1", "kind": "Gadget", "name": "g", "apiVersion": "example.com/v1"}
    kube.put(WIDGETS, "a", namespace="n1")
    kube.put(WIDGETS, "b", namespace="n2", spec={"color": "red"})
    kube.objects[WIDGETS][ObjectKey("n2", "b")]["metadata"]["ownerReferences"] = [owner_ref]
    factory = InformerFactory(kube, clock=clock)
    informer = factory.informer(WIDGETS)
    informer.add_indexer("color", lambda o: [o.get("spec", {}).get("color", "none")])
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        await factory.wait_synced()
        assert factory.has_synced
        assert [o["metadata"]["name"] for o in factory.list(WIDGETS, "n1")] == ["a"]
        assert [o["metadata"]["name"] for o in factory.by_index(WIDGETS, OWNER_INDEX, "u-1")] == [
            "b"
        ]
        assert [o["metadata"]["name"] for o in factory.by_index(WIDGETS, "color", "red")] == ["b"]
        assert factory.by_index(WIDGETS, "namespace", "n2")[0]["metadata"]["name"] == "b"
        got = factory.get(WIDGETS, ObjectKey("n1", "a"))
        assert got is not None
        got["spec"] = {"mutated": True}  # reads are copies: the cache is untouched
        assert "spec" not in (factory.get(WIDGETS, ObjectKey("n1", "a")) or {})
        tg.cancel_scope.cancel()
    assert index_by_owner_uid({"metadata": {"ownerReferences": [owner_ref]}}) == ["u-1"]


async def test_factory_shares_one_informer_per_scope_and_starts_late_ones() -> None:
    kube, clock = FakeKube(WIDGETS, PODS), FakeClock()
    kube.put(PODS, "p")
    factory = InformerFactory(kube, clock=clock)
    first = factory.informer(WIDGETS)
    assert factory.informer(WIDGETS) is first
    assert factory.informer(WIDGETS, namespace="x") is not first
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        await factory.wait_synced()
        late = factory.informer(PODS)  # requested after start: runs too
        await late.wait_synced()
        assert [k.name for k in late.store] == ["p"]
        tg.cancel_scope.cancel()
