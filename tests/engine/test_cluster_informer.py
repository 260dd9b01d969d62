"""The informer against a real API server: paged lists, watches, dropped watches, 410, 500, 429."""

from __future__ import annotations

import anyio
import pytest

from kaito.cluster import Cluster
from kaito.engine import Informer
from tests.engine.clusterkit import (
    API_VERSION,
    Changes,
    StepClock,
    cached_versions,
    engine_client,
    served_versions,
    widget,
)
from tests.engine.support import WIDGETS

pytestmark = pytest.mark.anyio
NS = "apps"


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
        # The 410 comes after a failure, so the relist waits out the backoff like any retry.
        clock.auto_advance = True
        clock.advance_to_next()
        served = await served_versions(cluster, NS)
        await changes.until(lambda: cached_versions(informer) == served)
        tg.cancel_scope.cancel()
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
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
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
    seen = [(name, rv) for kind, name, rv in changes.events if kind != "delete"]
    assert len(seen) == len(set(seen)), "an object version was delivered twice"
    for i in range(5):
        versions = [int(rv) for name, rv in seen if name == f"apps/w{i}"]
        assert versions == sorted(versions)
        assert len(versions) == (5 if i == 4 else 6)  # every write of every round, in order
    assert [kind for kind, name, _ in changes.events if name == "apps/w4"][-1] == "delete"


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [pytest.param(500, None, id="500-backs-off"), pytest.param(429, 7, id="429-retry-after")],
)
async def test_failed_lists_back_off_and_honour_retry_after(
    cluster: Cluster, status: int, retry_after: int | None
) -> None:
    await cluster.client.create(widget("w", NS))
    rule = cluster.faults.fail(status, retry_after=retry_after, verb="list", resource="widgets")
    clock = StepClock()
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        informer = Informer(client, WIDGETS, namespace=NS, clock=clock)
        tg.start_soon(informer.run)
        waited = await clock.next_sleep()
        assert not informer.has_synced
        clock.advance_to_next()
        with anyio.fail_after(10):
            await informer.wait_synced()
        tg.cancel_scope.cancel()
    assert rule.hits == 1
    if retry_after is None:
        assert 0.8 <= waited <= 1.6  # the first jittered backoff step
    else:
        assert waited == retry_after  # the server's Retry-After beats the shorter backoff
    assert cached_versions(informer).keys() == {"w"}
