"""The real KubeClient (kubernetes_asyncio underneath) against the HTTP fake server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import anyio
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from kaito.engine.client import KubeClient
from kaito.engine.clock import FakeClock
from kaito.engine.errors import ApiError
from kaito.engine.informer import Informer
from kaito.engine.keys import ObjectKey
from tests.engine.fakekube import FakeKube
from tests.engine.fakeserver import FakeServer, serve
from tests.engine.support import WIDGETS, Recorder

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[FakeKube, FakeServer, KubeClient]]:
    kube = FakeKube(WIDGETS)
    async with serve(kube) as (server, url):
        configuration = Configuration(host=url)
        client = KubeClient(ApiClient(configuration))
        try:
            yield kube, server, client
        finally:
            await client.close()


async def test_crud_and_status_patch_round_trip(
    cluster: tuple[FakeKube, FakeServer, KubeClient],
) -> None:
    _, server, client = cluster
    created = await client.create(
        WIDGETS, {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"n": 1}}
    )
    assert created["metadata"]["uid"]
    key = ObjectKey("ns", "a")
    patched = await client.patch(WIDGETS, key, {"spec": {"n": 2}})
    assert patched["spec"] == {"n": 2}
    assert patched["metadata"]["generation"] == 2
    status = await client.patch_status(WIDGETS, key, {"phase": "Ready"})
    assert status["status"] == {"phase": "Ready"}
    assert status["metadata"]["generation"] == 2
    got = await client.get(WIDGETS, key)
    assert got["status"] == {"phase": "Ready"}
    got["spec"]["n"] = 3
    replaced = await client.replace(WIDGETS, got)
    assert replaced["spec"]["n"] == 3
    with pytest.raises(ApiError) as conflict:
        await client.replace(WIDGETS, got)  # stale resourceVersion
    assert conflict.value.conflict
    await client.delete(WIDGETS, key)
    await client.delete(WIDGETS, key)  # already gone: fine
    with pytest.raises(ApiError) as missing:
        await client.get(WIDGETS, key)
    assert missing.value.not_found
    assert ("PATCH", "/apis/example.com/v1/namespaces/ns/widgets/a/status") in server.requests


async def test_errors_carry_status_reason_and_retry_after(
    cluster: tuple[FakeKube, FakeServer, KubeClient],
) -> None:
    kube, _, client = cluster
    kube.fail_next("list", ApiError(429, "TooManyRequests", "slow down", retry_after=7))
    with pytest.raises(ApiError) as err:
        await client.list(WIDGETS)
    assert (err.value.status, err.value.reason, err.value.retry_after) == (
        429,
        "TooManyRequests",
        7.0,
    )
    await client.create(WIDGETS, {"metadata": {"name": "x", "namespace": "d"}})
    with pytest.raises(ApiError) as exists:
        await client.create(WIDGETS, {"metadata": {"name": "x", "namespace": "d"}})
    assert exists.value.conflict


async def test_list_pages_and_watch_stream(
    cluster: tuple[FakeKube, FakeServer, KubeClient],
) -> None:
    kube, _, client = cluster
    for name in "abc":
        kube.put(WIDGETS, name, namespace="ns")
    first = await client.list(WIDGETS, namespace="ns", limit=2)
    assert [o["metadata"]["name"] for o in first.items] == ["a", "b"]
    rest = await client.list(WIDGETS, namespace="ns", limit=2, continue_token=first.continue_token)
    assert [o["metadata"]["name"] for o in rest.items] == ["c"]
    assert rest.continue_token is None
    async with client.watch(
        WIDGETS, resource_version=first.resource_version, timeout_seconds=5
    ) as events:
        kube.put(WIDGETS, "d", namespace="ns")
        kube.bookmark()
        got = []
        async for event in events:
            got.append((event.type, event.object["metadata"].get("name")))
            if event.type == "BOOKMARK":
                break
    assert got == [("ADDED", "d"), ("BOOKMARK", None)]
    kube.compact()

    async def drain_stale_watch() -> None:
        async with client.watch(WIDGETS, resource_version=first.resource_version) as events:
            async for _ in events:
                pass

    with pytest.raises(ApiError) as gone:
        await drain_stale_watch()
    assert gone.value.gone


async def test_informer_over_http_survives_dropped_connections_and_410(
    cluster: tuple[FakeKube, FakeServer, KubeClient],
) -> None:
    kube, _, client = cluster
    clock = FakeClock()
    kube.put(WIDGETS, "a")
    informer = Informer(client, WIDGETS, clock=clock, rng=random.Random(0))
    rec = Recorder()
    informer.add_handler(rec)

    def in_step() -> bool:
        server_side = {
            k: o["metadata"]["resourceVersion"] for k, o in kube.objects[WIDGETS].items()
        }
        cached = {k: o["metadata"]["resourceVersion"] for k, o in informer.store.items()}
        return server_side == cached

    async def until(cond: object) -> None:
        with anyio.fail_after(10):
            while not cond():  # type: ignore[operator]
                # Network I/O is real here: poll with the event loop, step the fake clock.
                await anyio.sleep(0.005)
                clock.advance(0.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await until(lambda: bool(kube.watchers))
        kube.drop_watches(error=ConnectionResetError("peer went away"))
        kube.put(WIDGETS, "b")
        await until(lambda: bool(kube.watchers) and in_step())
        assert kube.calls["list"] == 1  # resumed, not relisted
        kube.drop_watches()
        kube.remove(WIDGETS, ObjectKey("default", "a"))
        kube.compact()
        await until(lambda: kube.calls["list"] == 2 and bool(kube.watchers) and in_step())
        tg.cancel_scope.cancel()
    # A relist re-delivers what is still there as updates, and what vanished as deletes.
    assert rec.kinds() == [
        ("add", "default/a"),
        ("add", "default/b"),
        ("update", "default/b"),
        ("delete", "default/a"),
    ]


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

    from kaito.engine.client import _object_text

    event = json.loads(line)
    text = _object_text(line, event["type"], event)
    assert text == expected
    if text is not None:
        assert json.loads(text) == event["object"]
