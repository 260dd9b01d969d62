"""A server restarted from a storage backup, and versions the store has not reached yet.

After a restore the server is back at the backup's resourceVersion, below the versions clients
still hold. kube-apiserver then refuses a LIST (and a watch-list) at such a version with 504
``ResourceVersionTooLarge``, but keeps a plain watch open and quiet until its store passes the
version (``cacher.go``: "we allow for establishing the connection because the clients can wait
for events without unnecessary blocking").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kaito.cluster import GroupResource, MemoryStorage, ObjectIndex, start_cluster
from kaito.cluster._store import ExpiredError
from tests.cluster._helpers import GADGETS, gadget, http
from tests.cluster.conftest import GADGETS_CRD

pytestmark = pytest.mark.anyio
URL = GADGETS.format(ns="default")
GR = GroupResource("testing.kaito.sh", "gadgets")
TOO_LARGE_CAUSES = [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]


def body(name: str) -> tuple[dict[str, Any], ObjectIndex]:
    return {"metadata": {"name": name, "namespace": "ns"}}, ObjectIndex("ns", name, name)


async def test_a_restored_store_starts_again_at_the_backup_version() -> None:
    store = MemoryStorage()
    await store.create(GR, *body("a"))
    backup = store.backup()
    later = await store.create(GR, *body("b"))
    restored = MemoryStorage.restore(backup)
    assert restored.resource_version == backup.rv < later.rv
    assert [o.name for o in (await restored.list(GR, None)).items] == ["a"]
    again = await restored.create(GR, *body("c"))
    assert again.rv == backup.rv + 1 == later.rv  # the same version names another change
    with pytest.raises(ExpiredError):  # no history before the backup comes back
        restored.watch(GR, None, backup.rv - 1)
    restored.watch(GR, None, backup.rv).close()
    assert [o.name for o in (await store.list(GR, None)).items] == ["a", "b"]  # untouched


async def test_a_restarted_server_refuses_lists_and_watch_lists_at_versions_it_has_not_reached() -> (
    None
):
    async with start_cluster(crds=[GADGETS_CRD]) as cluster, http(cluster) as client:
        await client.post(URL, json=gadget("kept"))
        backup = cluster.store.backup()
        created = await client.post(URL, json=gadget("lost"))
        high = int(created.json()["metadata"]["resourceVersion"])
    async with (
        start_cluster(
            port=cluster.port, store=MemoryStorage.restore(backup), bookmark_interval=0.2
        ) as restarted,
        http(restarted) as client,
    ):
        assert restarted.url == cluster.url
        listed = (await client.get(URL)).json()
        assert [i["metadata"]["name"] for i in listed["items"]] == ["kept"]
        assert int(listed["metadata"]["resourceVersion"]) < high

        refused = await client.get(URL, params={"resourceVersion": str(high), "limit": "1"})
        assert refused.status_code == 504
        assert refused.headers["Retry-After"] == "1"
        current = restarted.store.resource_version
        assert refused.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"Timeout: Too large resource version: {high}, current: {current}",
            "reason": "Timeout",
            "details": {"causes": TOO_LARGE_CAUSES, "retryAfterSeconds": 1},
            "code": 504,
        }
        at_current = await client.get(URL, params={"resourceVersion": str(current)})
        assert at_current.status_code == 200

        params = {
            "watch": "true",
            "resourceVersion": str(high),
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
        }
        async with client.stream("GET", URL, params=params) as response:
            assert response.status_code == 200  # errors after the version parsed are events
            lines = [json.loads(line) async for line in response.aiter_lines() if line]
        assert [line["type"] for line in lines] == ["ERROR"]
        assert lines[0]["object"]["code"] == 504
        assert lines[0]["object"]["details"]["causes"] == TOO_LARGE_CAUSES


async def test_a_plain_watch_ahead_of_the_store_waits_quietly_until_it_is_passed() -> None:
    async with start_cluster(crds=[GADGETS_CRD]) as cluster, http(cluster) as client:
        backup = cluster.store.backup()
        for name in ("x1", "x2"):
            created = await client.post(URL, json=gadget(name))
        high = int(created.json()["metadata"]["resourceVersion"])
    async with (
        start_cluster(
            port=cluster.port, store=MemoryStorage.restore(backup), bookmark_interval=0.2
        ) as restarted,
        http(restarted) as client,
    ):
        assert restarted.store.resource_version < high
        params = {"watch": "true", "resourceVersion": str(high), "allowWatchBookmarks": "true"}
        async with client.stream("GET", URL, params=params) as response:
            assert response.status_code == 200
            # Bookmark ticks pass while the store is below the watch's version: none is sent.
            with restarted.faults.delay(0.5, verb="create", times=1):
                await client.post(URL, json=gadget("y1"))
            while restarted.store.resource_version <= high:
                await client.post(URL, json=gadget(f"y{restarted.store.resource_version}"))
            lines = response.aiter_lines()
            first = json.loads(await anext(line async for line in lines if line))
            assert first["type"] == "ADDED"
            assert int(first["object"]["metadata"]["resourceVersion"]) == high + 1
