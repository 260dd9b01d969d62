"""The real KubeClient (kubernetes_asyncio underneath) against the in-process API server."""

from __future__ import annotations

import anyio
import pytest

from kaito.cluster import Cluster
from kaito.engine import ApiError, ObjectKey
from tests.engine.clusterkit import NS, WIDGETS, engine_client, widget

pytestmark = pytest.mark.anyio


async def test_crud_and_status_patch_round_trip(cluster: Cluster) -> None:
    status_patches = cluster.faults.delay(0, verb="patch", subresource="status")  # counts them
    async with engine_client(cluster) as client:
        created = await client.create(WIDGETS, widget("a", NS))
        assert created["metadata"]["uid"]
        key = ObjectKey(NS, "a")
        patched = await client.patch(WIDGETS, key, {"spec": {"size": 2}})
        assert patched["spec"] == {"size": 2}
        assert patched["metadata"]["generation"] == 2
        status = await client.patch_status(WIDGETS, key, {"phase": "Ready"})
        assert status["status"] == {"phase": "Ready"}
        assert status["metadata"]["generation"] == 2  # status writes do not bump it
        got = await client.get(WIDGETS, key)
        assert got["status"] == {"phase": "Ready"}
        got["spec"]["size"] = 3
        replaced = await client.replace(WIDGETS, got)
        assert replaced["spec"]["size"] == 3
        with pytest.raises(ApiError) as conflict:
            await client.replace(WIDGETS, got)  # a stale resourceVersion
        assert conflict.value.conflict
        await client.delete(WIDGETS, key)
        await client.delete(WIDGETS, key)  # already gone: fine
        with pytest.raises(ApiError) as missing:
            await client.get(WIDGETS, key)
        assert missing.value.not_found
    assert status_patches.hits == 1


async def test_errors_carry_status_reason_and_retry_after(cluster: Cluster) -> None:
    cluster.faults.fail(429, retry_after=7, verb="list", resource="widgets")
    async with engine_client(cluster) as client:
        with pytest.raises(ApiError) as err:
            await client.list(WIDGETS)
        assert (err.value.status, err.value.reason, err.value.retry_after) == (
            429,
            "TooManyRequests",
            7.0,
        )
        await client.create(WIDGETS, widget("x", NS))
        with pytest.raises(ApiError) as exists:
            await client.create(WIDGETS, widget("x", NS))
        assert exists.value.conflict
        assert exists.value.reason == "AlreadyExists"


async def test_list_pages_and_watch_stream(cluster: Cluster) -> None:
    for name in "abc":
        await cluster.client.create(widget(name, NS))
    async with engine_client(cluster) as client:
        first = await client.list(WIDGETS, namespace=NS, limit=2)
        assert [o["metadata"]["name"] for o in first.items] == ["a", "b"]
        rest = await client.list(
            WIDGETS, namespace=NS, limit=2, continue_token=first.continue_token
        )
        assert [o["metadata"]["name"] for o in rest.items] == ["c"]
        assert rest.continue_token is None
        got = []
        async with client.watch(
            WIDGETS, resource_version=first.resource_version, timeout_seconds=5
        ) as events:
            await cluster.client.create(widget("d", NS))
            async for event in events:
                got.append((event.type, event.object["metadata"].get("name")))
                if event.type == "BOOKMARK":  # the server sends them every 0.2 s here
                    break
        assert got == [("ADDED", "d"), ("BOOKMARK", None)]
        await cluster.faults.compact()

        async def drain_stale_watch() -> None:
            async with client.watch(WIDGETS, resource_version=first.resource_version) as events:
                async for _ in events:
                    pass

        with pytest.raises(ApiError) as gone:  # an ERROR event on the stream
            with anyio.fail_after(10):
                await drain_stale_watch()
        assert gone.value.gone
        assert gone.value.reason == "Expired"


async def test_a_list_at_a_version_the_server_has_not_reached_is_refused(cluster: Cluster) -> None:
    async with engine_client(cluster) as client:
        listed = await client.list(WIDGETS, namespace=NS)
        again = await client.list(
            WIDGETS, namespace=NS, limit=1, resource_version=listed.resource_version
        )
        assert int(again.resource_version) >= int(listed.resource_version)
        ahead = str(cluster.store.resource_version + 10)
        with pytest.raises(ApiError) as refused:
            await client.list(WIDGETS, namespace=NS, limit=1, resource_version=ahead)
        assert refused.value.too_large_resource_version
        assert (refused.value.status, refused.value.reason) == (504, "Timeout")
        assert refused.value.retry_after == 1.0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"type":"ADDED","object":{"a":1,"b":{"c":"}"}}}\n', '{"a":1,"b":{"c":"}"}}'),
        ('{"type": "ADDED", "object": {"a": 1}}\n', None),  # not the API server's shape
        ('{"object":{"a":1},"type":"ADDED"}\n', None),
    ],
    ids=["apiserver-shape", "spaced", "reordered"],
)
def test_object_text_is_cut_from_the_api_server_line_shape_only(
    line: str, expected: str | None
) -> None:
    import json

    from kaito.engine._client import _object_text

    event = json.loads(line)
    text = _object_text(line, event["type"], event)
    assert text == expected
    if text is not None:
        assert json.loads(text) == event["object"]
