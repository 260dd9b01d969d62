"""Fault injection: failed requests, Retry-After, latency, dropped watches."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from kaito.cluster import Cluster
from tests.cluster._helpers import GADGETS, gadget, http, status_of

pytestmark = pytest.mark.anyio
URL = GADGETS.format(ns="default")


async def test_fail_answers_matching_requests_a_given_number_of_times(cluster: Cluster) -> None:
    rule = cluster.faults.fail(
        500, times=2, verb="create", resource="gadgets", message="etcd is on fire"
    )
    async with http(cluster) as client:
        assert (await client.get(URL)).status_code == 200, "other verbs are untouched"
        first = await client.post(URL, json=gadget("a"))
        assert status_of(first) == (
            500,
            "InternalError",
            "Internal error occurred: etcd is on fire",
        )
        assert (await client.post(URL, json=gadget("a"))).status_code == 500
        assert (await client.post(URL, json=gadget("a"))).status_code == 201
    assert rule.hits == 2
    assert not cluster.faults.active


async def test_throttling_carries_retry_after(cluster: Cluster) -> None:
    with cluster.faults.fail(429, times=None, retry_after=7, when=lambda info: info.name == "a"):
        async with http(cluster) as client:
            await client.post(URL, json=gadget("a"))
            throttled = await client.get(f"{URL}/a")
            assert status_of(throttled)[:2] == (429, "TooManyRequests")
            assert throttled.headers["retry-after"] == "7"
            assert throttled.json()["details"]["retryAfterSeconds"] == 7
    async with http(cluster) as client:
        assert (await client.get(f"{URL}/a")).status_code == 200


async def test_delay_adds_latency(cluster: Cluster) -> None:
    with cluster.faults.delay(0.3, verb="list"):
        async with http(cluster) as client:
            started = time.monotonic()
            await client.get(URL)
            assert time.monotonic() - started >= 0.3
            started = time.monotonic()
            await client.get("/version")
            assert time.monotonic() - started < 0.3


async def test_aborted_watches_break_the_connection(cluster: Cluster) -> None:
    async with http(cluster) as client:
        rv = (await client.get(URL)).json()["metadata"]["resourceVersion"]
        async with client.stream(
            "GET", URL, params={"watch": "true", "resourceVersion": rv}
        ) as response:
            await client.post(URL, json=gadget("a"))
            lines = response.aiter_lines()
            assert json.loads(await anext(lines))["type"] == "ADDED"
            assert cluster.faults.open_watches == 1
            cluster.faults.drop_watches(abort=True)
            with pytest.raises(httpx.HTTPError):
                async for _ in lines:
                    pass
    assert cluster.faults.open_watches == 0


def test_invalid_rules_are_refused() -> None:
    from kaito.cluster import Faults, MemoryStorage

    faults = Faults(MemoryStorage())
    with pytest.raises(ValueError, match="status=200"):
        faults.fail(200)
    with pytest.raises(ValueError, match="times=0"):
        faults.fail(500, times=0)


async def test_disconnect_closes_the_connection_without_an_answer(cluster: Cluster) -> None:
    rule = cluster.faults.disconnect(verb="list", resource="gadgets")
    async with http(cluster) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(URL)
        assert (await client.get(URL)).status_code == 200
    assert rule.hits == 1


async def test_rules_answer_requests_in_turn(cluster: Cluster) -> None:
    first = cluster.faults.fail(500, verb="list", resource="gadgets")
    second = cluster.faults.fail(429, retry_after=3, verb="list", resource="gadgets")
    third = cluster.faults.disconnect(verb="list", resource="gadgets")
    counted = cluster.faults.delay(0, times=None, verb="list", resource="gadgets")
    async with http(cluster) as client:
        assert (await client.get(URL)).status_code == 500
        assert (await client.get(URL)).status_code == 429
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(URL)
        assert (await client.get(URL)).status_code == 200
    assert (first.hits, second.hits, third.hits, counted.hits) == (1, 1, 1, 4)
