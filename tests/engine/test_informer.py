"""The informer against the in-process API server: paged lists, watches, resumes, relists
(410, a version the server has not reached, refusals), backoff, resync, handlers and indexes."""

from __future__ import annotations

import random

import aiohttp
import anyio
import pytest
from structlog.testing import capture_logs

from kaito.cluster import Cluster
from kaito.engine import (
    OWNER_INDEX,
    ApiError,
    Informer,
    InformerFactory,
    ObjectKey,
    index_by_owner_uid,
)
from tests.engine.clusterkit import (
    API_VERSION,
    CONFIGMAPS,
    NS,
    WIDGETS,
    Changes,
    RecordingClient,
    StepClock,
    cached_versions,
    engine_client,
    served_versions,
    widget,
)
from tests.engine.support import Recorder

pytestmark = pytest.mark.anyio
REASONS = {403: "Forbidden", 410: "Expired", 504: "Timeout"}


async def test_pages_the_first_list_then_follows_the_watch(cluster: Cluster) -> None:
    for i in range(5):
        await cluster.client.create(widget(f"w{i}", NS))
    lists = cluster.faults.delay(0, verb="list", resource="widgets")  # counts, adds nothing
    changes = Changes()
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        informer = Informer(client, WIDGETS, namespace=NS, page_size=2, clock=StepClock())
        informer.add_handler(changes)
        tg.start_soon(informer.run)
        with anyio.fail_after(10):
            await informer.wait_synced()
        assert sorted(name for _, name in changes.kinds()) == [f"{NS}/w{i}" for i in range(5)]
        await cluster.client.create(widget("late", NS))
        await cluster.client.patch(API_VERSION, "Widget", "w0", {"spec": {"size": 3}}, namespace=NS)
        await cluster.client.delete(API_VERSION, "Widget", "w1", NS)
        served = await served_versions(cluster, NS)
        await changes.until(lambda: cached_versions(informer) == served)
        tg.cancel_scope.cancel()
    assert lists.hits == 3  # 5 objects in pages of 2, over continue tokens
    assert changes.kinds()[5:] == [
        ("add", "apps/late"),
        ("update", "apps/w0"),
        ("delete", "apps/w1"),
    ]
    assert informer.stats["lists"] == 1


async def test_relists_after_410_and_delivers_what_changed_while_away(cluster: Cluster) -> None:
    for name in ("keep", "change", "remove"):
        await cluster.client.create(widget(name, NS))
    clock = StepClock()
    changes = Changes()
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        informer = Informer(client, WIDGETS, namespace=NS, clock=clock)
        informer.add_handler(changes)
        tg.start_soon(informer.run)
        with anyio.fail_after(10):
            await informer.wait_synced()
        # Keep the informer away: its watch ends and re-watching fails until the rule goes.
        away = cluster.faults.fail(500, verb="watch", resource="widgets", times=None)
        cluster.faults.drop_watches("widgets")
        await clock.next_sleep()
        stale = informer.resource_version
        await cluster.client.patch(
            API_VERSION, "Widget", "change", {"spec": {"size": 2}}, namespace=NS
        )
        await cluster.client.delete(API_VERSION, "Widget", "remove", NS)
        await cluster.client.create(widget("new", NS))
        await cluster.faults.compact()  # the informer's resourceVersion is now too old
        away.remove()
        before = len(changes.events)
        clock.auto_advance = True
        with capture_logs() as logs:
            clock.advance_to_next()  # wakes it from the backoff; the re-watch gets 410
            served = await served_versions(cluster, NS)
            await changes.until(lambda: cached_versions(informer) == served)
        tg.cancel_scope.cancel()
    relisting = [e for e in logs if e["event"] == "informer_relisting"]
    assert [(e["cause"], e["status"]) for e in relisting] == [("expired", 410)]
    assert relisting[0]["resource_version"] == stale
    assert informer.stats["lists"] == 2
    assert informer.resource_version != stale
    after = sorted(changes.kinds()[before:])
    # The relist reports every listed object (updates for those it knew), the new one as an
    # add and the one that vanished as a delete carrying its last known state.
    assert after == [
        ("add", "apps/new"),
        ("delete", "apps/remove"),
        ("update", "apps/change"),
        ("update", "apps/keep"),
    ]
    assert away.hits >= 1


async def test_resumes_after_dropped_watches_with_nothing_lost_or_repeated(
    cluster: Cluster,
) -> None:
    clock = StepClock(auto_advance=True)  # backoffs after an aborted connection cost nothing
    changes = Changes()
    async with engine_client(cluster) as real, anyio.create_task_group() as tg:
        client = RecordingClient(real)
        informer = Informer(client, WIDGETS, namespace=NS, clock=clock)
        informer.add_handler(changes)
        tg.start_soon(informer.run)
        with anyio.fail_after(10):
            await informer.wait_synced()
        dropped = 0
        for rnd in range(6):
            # Writes land while the informer's watch is down or being re-opened.
            dropped += cluster.faults.drop_watches("widgets", abort=rnd % 2 == 1)
            for i in range(5):
                name = f"w{i}"
                if rnd == 0:
                    await cluster.client.create(widget(name, NS))
                elif rnd == 5 and i == 4:
                    await cluster.client.delete(API_VERSION, "Widget", name, NS)
                else:
                    await cluster.client.patch(
                        API_VERSION, "Widget", name, {"spec": {"size": 100 + rnd}}, namespace=NS
                    )
            served = await served_versions(cluster, NS)
            await changes.until(lambda: cached_versions(informer) == served)  # noqa: B023
        tg.cancel_scope.cancel()
    assert informer.stats["lists"] == 1  # resumed from the last resourceVersion every time
    assert dropped >= 5  # every round but perhaps the first found the watch open
    assert informer.stats["watches"] >= dropped + 1
    # Every resume asked first for one item at the version it then watched from.
    checks = [options for options in client.lists if options.get("limit") == 1]
    assert len(checks) == informer.stats["resume_checks"] == informer.stats["watches"] - 1
    assert [c["resource_version"] for c in checks] == client.watches[1:]
    assert all(client.watches)  # never a watch without a version: nothing replayed from scratch
    seen = [(name, rv) for kind, name, rv in changes.events if kind != "delete"]
    assert len(seen) == len(set(seen)), "an object version was delivered twice"
    for i in range(5):
        versions = [int(rv) for name, rv in seen if name == f"apps/w{i}"]
        assert versions == sorted(versions)
        assert len(versions) == (5 if i == 4 else 6)  # every write of every round, in order
    assert [kind for kind, name, _ in changes.events if name == "apps/w4"][-1] == "delete"


async def test_failures_back_off_with_jitter_honour_retry_after_and_say_why(
    cluster: Cluster,
) -> None:
    await cluster.client.create(widget("w", NS))
    cluster.faults.fail(500, verb="list", resource="widgets")
    cluster.faults.fail(429, retry_after=40, verb="list", resource="widgets")
    # The server hangs up; aiohttp retries an idempotent request once on a fresh connection.
    hang_ups = cluster.faults.disconnect(times=2, verb="list", resource="widgets")
    clock = StepClock()
    waits: list[float] = []
    failures: list[str | None] = []
    with capture_logs() as logs:
        async with engine_client(cluster) as real, anyio.create_task_group() as tg:
            client = RecordingClient(real)
            informer = Informer(client, WIDGETS, namespace=NS, clock=clock, rng=random.Random(1))
            tg.start_soon(informer.run)
            for _ in range(3):
                waits.append(await clock.next_sleep())
                failures.append(informer.failure)
                assert not informer.has_synced
                clock.advance_to_next()
            with anyio.fail_after(10):
                await informer.wait_synced()
            assert informer.failure is None
            # A success starts the backoff over: the next failure waits the first step again.
            await client.until(lambda: bool(client.events))  # a bookmark: the watch is open
            cluster.faults.fail(503, verb="list", resource="widgets")  # the resume check
            cluster.faults.drop_watches("widgets")
            waits.append(await clock.next_sleep())
            failures.append(informer.failure)
            clock.advance_to_next()
            await client.until(lambda: len(client.watches) == 2)
            tg.cancel_scope.cancel()
    assert 0.8 <= waits[0] <= 1.6  # the first jittered step
    assert waits[1] == 40  # the server's Retry-After beats the 1.6..3.2 s step
    assert 3.2 <= waits[2] <= 6.4
    assert 0.8 <= waits[3] <= 1.6
    assert failures == [
        "500 InternalError",
        "429 TooManyRequests",
        "ServerDisconnectedError",
        "503 ServiceUnavailable",
    ]
    assert informer.stats["lists"] == 4  # three failed, one listed; the resume needed none
    logged = [e for e in logs if e["event"] == "list_watch_failed"]
    assert [e.get("status") for e in logged] == [500, 429, None, 503]
    assert issubclass(getattr(aiohttp, logged[2]["error_type"]), aiohttp.ClientError)
    assert cached_versions(informer).keys() == {"w"}
    assert hang_ups.hits == 2


@pytest.mark.parametrize(
    ("status", "message", "cause"),
    [
        pytest.param(403, "forbidden", "refused", id="403-refused"),
        pytest.param(410, "too old resource version: 5 (9)", "expired", id="410-expired"),
        pytest.param(
            504,
            "Timeout: Too large resource version: 99, current: 9",
            "resource_version_too_large",
            id="504-too-large",
        ),
    ],
)
async def test_a_resume_the_server_refuses_relists_at_once_and_then_backs_off(
    cluster: Cluster, status: int, message: str, cause: str
) -> None:
    await cluster.client.create(widget("w", NS))
    clock = StepClock()
    changes = Changes()
    async with engine_client(cluster) as real, anyio.create_task_group() as tg:
        client = RecordingClient(real)
        informer = Informer(client, WIDGETS, namespace=NS, clock=clock)
        informer.add_handler(changes)
        tg.start_soon(informer.run)
        await client.until(lambda: bool(client.events))  # a bookmark: the watch is open
        with capture_logs() as logs:
            refusals = cluster.faults.fail(
                status, message=message, times=2, verb="watch", resource="widgets"
            )
            cluster.faults.drop_watches("widgets")
            # The first refusal relists at once; the second in a row waits out a backoff.
            await clock.next_sleep()
            assert informer.stats["lists"] == 2
            assert informer.failure == f"{status} {REASONS[status]}"
            clock.advance_to_next()
            await cluster.client.create(widget("later", NS))
            await changes.until(lambda: ("add", "apps/later") in changes.kinds())
        tg.cancel_scope.cancel()
    assert refusals.hits == 2
    assert informer.stats["lists"] == informer.stats["relists"] + 1 == 3
    causes = [e["cause"] for e in logs if e["event"] == "informer_relisting"]
    assert causes == [cause, cause]
    assert informer.failure is None


def test_too_large_resource_version_is_recognised_as_client_go_does() -> None:
    causes = [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    current = ApiError.from_status(
        504, {"code": 504, "reason": "Timeout", "details": {"causes": causes}}
    )
    legacy_cause = ApiError.from_status(
        504,
        {
            "code": 504,
            "reason": "Timeout",
            "details": {"causes": [{"message": "Too large resource version"}]},
        },
    )
    legacy_message = ApiError(504, "Timeout", "Timeout: Too large resource version: 9, current: 5")
    other_timeout = ApiError(504, "Timeout", "Timeout: request did not complete within 60s")
    for err in (current, legacy_cause, legacy_message):
        assert err.too_large_resource_version
        assert not err.retriable
    assert not other_timeout.too_large_resource_version
    assert other_timeout.retriable
    assert ApiError(410, "Expired").gone
    assert ApiError(410, "Gone").gone
    assert ApiError(429, "TooManyRequests").retriable
    assert not ApiError(403, "Forbidden").retriable


async def test_a_handler_that_raises_is_logged_and_the_informer_goes_on(cluster: Cluster) -> None:
    class Boom(Recorder):
        def on_add(self, obj: dict[str, object]) -> None:
            raise RuntimeError("handler bug")

    changes = Changes()
    with capture_logs() as logs:
        async with engine_client(cluster) as client, anyio.create_task_group() as tg:
            informer = Informer(client, WIDGETS, namespace=NS, clock=StepClock())
            informer.add_handler(Boom())
            informer.add_handler(changes)
            tg.start_soon(informer.run)
            with anyio.fail_after(10):
                await informer.wait_synced()
            await cluster.client.create(widget("x", NS))
            await cluster.client.create(widget("y", NS))
            await changes.until(lambda: len(changes.events) == 2)
            tg.cancel_scope.cancel()
    errors = [e for e in logs if e["event"] == "event_handler_failed"]
    assert [e["key"] for e in errors] == ["apps/x", "apps/y"]
    assert informer.stats["handler_errors"] == 2


async def test_resync_redelivers_every_object_as_an_update(cluster: Cluster) -> None:
    for name in "ab":
        await cluster.client.create(widget(name, NS))
    clock = StepClock()
    changes = Changes()
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        informer = Informer(client, WIDGETS, namespace=NS, clock=clock, resync_period=30.0)
        informer.add_handler(changes)
        tg.start_soon(informer.run)
        with anyio.fail_after(10):
            await informer.wait_synced()
        assert await clock.next_sleep() == 30.0
        clock.advance(30)
        await changes.until(lambda: len(changes.events) == 4)
        tg.cancel_scope.cancel()
    assert sorted(changes.kinds()[2:]) == [("update", "apps/a"), ("update", "apps/b")]


async def test_bookmarks_advance_the_resource_version(cluster: Cluster) -> None:
    async with engine_client(cluster) as real, anyio.create_task_group() as tg:
        client = RecordingClient(real)
        informer = Informer(client, WIDGETS, namespace=NS, clock=StepClock())
        tg.start_soon(informer.run)
        with anyio.fail_after(10):
            await informer.wait_synced()
        listed = informer.resource_version
        unrelated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        await cluster.client.create({**unrelated, "metadata": {"name": "c", "namespace": NS}})
        current = str(cluster.store.resource_version)  # beyond the list; no Widget changed
        await client.until(lambda: informer.resource_version == current)
        tg.cancel_scope.cancel()
    assert listed != current
    assert [e.type for e in client.events] and {e.type for e in client.events} == {"BOOKMARK"}


async def test_a_late_handler_gets_the_cache_replayed_as_adds(cluster: Cluster) -> None:
    await cluster.client.create(widget("a", NS))
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        informer = Informer(client, WIDGETS, namespace=NS, clock=StepClock())
        tg.start_soon(informer.run)
        with anyio.fail_after(10):
            await informer.wait_synced()
        late = Recorder()
        informer.add_handler(late)
        tg.cancel_scope.cancel()
    assert late.kinds() == [("add", "apps/a")]


async def test_indexes_by_namespace_owner_and_custom_function(cluster: Cluster) -> None:
    for namespace in ("n1", "n2"):
        await cluster.create_namespace(namespace)
    owner = await cluster.client.create(widget("g", "n2"))
    owner_ref = {
        "apiVersion": API_VERSION,
        "kind": "Widget",
        "name": "g",
        "uid": owner["metadata"]["uid"],
    }
    await cluster.client.create(widget("a", "n1"))
    owned = widget("b", "n2", size=7)
    owned["metadata"]["ownerReferences"] = [owner_ref]
    await cluster.client.create(owned)
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        factory = InformerFactory(client, clock=StepClock())
        informer = factory.informer(WIDGETS)
        informer.add_indexer("size", lambda o: [str((o.get("spec") or {}).get("size"))])
        tg.start_soon(factory.run)
        with anyio.fail_after(10):
            await factory.wait_synced()
        assert factory.has_synced
        assert [o["metadata"]["name"] for o in factory.list(WIDGETS, "n1")] == ["a"]
        by_owner = factory.by_index(WIDGETS, OWNER_INDEX, owner_ref["uid"])
        assert [o["metadata"]["name"] for o in by_owner] == ["b"]
        assert [o["metadata"]["name"] for o in factory.by_index(WIDGETS, "size", "7")] == ["b"]
        in_n2 = sorted(o["metadata"]["name"] for o in factory.by_index(WIDGETS, "namespace", "n2"))
        assert in_n2 == ["b", "g"]
        got = factory.get(WIDGETS, ObjectKey("n1", "a"))
        assert got is not None
        got["spec"] = {"mutated": True}  # reads are copies: the cache is untouched
        assert factory.get(WIDGETS, ObjectKey("n1", "a"))["spec"] == {"size": 1}  # type: ignore[index]
        tg.cancel_scope.cancel()
    assert index_by_owner_uid({"metadata": {"ownerReferences": [owner_ref]}}) == [owner_ref["uid"]]


async def test_the_factory_shares_one_informer_per_scope_and_starts_late_ones(
    cluster: Cluster,
) -> None:
    await cluster.client.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p", "namespace": NS}}
    )
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        factory = InformerFactory(client, clock=StepClock())
        first = factory.informer(WIDGETS)
        assert factory.informer(WIDGETS) is first
        assert factory.informer(WIDGETS, namespace="x") is not first
        tg.start_soon(factory.run)
        with anyio.fail_after(10):
            await factory.wait_synced()
        late = factory.informer(CONFIGMAPS, namespace=NS)  # asked for after start: runs too
        with anyio.fail_after(10):
            await late.wait_synced()
        assert [key.name for key in late.store] == ["p"]
        tg.cancel_scope.cancel()
