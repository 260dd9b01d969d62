"""Conformance-style checks of reads over HTTP: selectors, pagination with consistent snapshots,
watch resume, bookmarks, 410 Gone, Table and metadata-only responses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kaito.cluster import Cluster
from tests.cluster._helpers import GADGETS, gadget, http, status_of

pytestmark = pytest.mark.anyio
URL = GADGETS.format(ns="default")


async def _seed(client: httpx.AsyncClient, count: int) -> None:
    for i in range(count):
        labels = {"index": str(i), "parity": "even" if i % 2 == 0 else "odd"}
        if i % 3 == 0:
            labels["three"] = "yes"
        body = gadget(f"g{i:02d}")
        body["metadata"]["labels"] = labels
        assert (await client.post(URL, json=body)).status_code == 201


def names(response: httpx.Response) -> list[str]:
    return [item["metadata"]["name"] for item in response.json()["items"]]


async def test_label_and_field_selectors(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await _seed(client, 7)
        cases = {
            "parity=even": ["g00", "g02", "g04", "g06"],
            "parity!=even": ["g01", "g03", "g05"],
            "index in (1,2,9)": ["g01", "g02"],
            "index notin (0,1,2,3,4)": ["g05", "g06"],
            "three": ["g00", "g03", "g06"],
            "!three,parity=odd": ["g01", "g05"],
        }
        for selector, expected in cases.items():
            assert names(await client.get(URL, params={"labelSelector": selector})) == expected, (
                selector
            )
        by_name = await client.get(URL, params={"fieldSelector": "metadata.name=g03"})
        assert names(by_name) == ["g03"]
        not_name = await client.get(
            URL, params={"fieldSelector": "metadata.name!=g03,metadata.namespace=default"}
        )
        assert len(names(not_name)) == 6
        bad = await client.get(URL, params={"fieldSelector": "spec.x=1"})
        assert status_of(bad)[:2] == (400, "BadRequest")
        all_namespaces = await client.get(
            "/apis/testing.kaito.sh/v1beta1/gadgets", params={"labelSelector": "three"}
        )
        assert names(all_namespaces) == ["g00", "g03", "g06"]


async def test_pods_select_on_node_name(cluster: Cluster) -> None:
    async with http(cluster) as client:
        for name, node in [("p1", "n1"), ("p2", "n2")]:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            }
            assert (
                await client.post("/api/v1/namespaces/default/pods", json=pod)
            ).status_code == 201
        selected = await client.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=n2"})
        assert names(selected) == ["p2"]


async def test_pagination_is_a_consistent_snapshot(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await _seed(client, 5)
        first = (await client.get(URL, params={"limit": 2})).json()
        assert [i["metadata"]["name"] for i in first["items"]] == ["g00", "g01"]
        assert first["metadata"]["remainingItemCount"] == 3
        token = first["metadata"]["continue"]
        await client.post(URL, json=gadget("g00a"))
        await client.delete(f"{URL}/g04")
        second = (await client.get(URL, params={"limit": 2, "continue": token})).json()
        assert [i["metadata"]["name"] for i in second["items"]] == ["g02", "g03"]
        assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        third = (
            await client.get(URL, params={"limit": 2, "continue": second["metadata"]["continue"]})
        ).json()
        assert [i["metadata"]["name"] for i in third["items"]] == ["g04"]
        assert "continue" not in third["metadata"]
        filtered = (
            await client.get(URL, params={"limit": 1, "labelSelector": "parity=odd"})
        ).json()
        assert [i["metadata"]["name"] for i in filtered["items"]] == ["g01"]
        rest = (
            await client.get(
                URL,
                params={
                    "limit": 5,
                    "labelSelector": "parity=odd",
                    "continue": filtered["metadata"]["continue"],
                },
            )
        ).json()
        assert [i["metadata"]["name"] for i in rest["items"]] == ["g03"]


async def test_continue_token_expires_after_compaction(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await _seed(client, 3)
        token = (await client.get(URL, params={"limit": 1})).json()["metadata"]["continue"]
        await client.post(URL, json=gadget("later"))
        await cluster.faults.compact()
        expired = await client.get(URL, params={"limit": 1, "continue": token})
        code, reason, message = status_of(expired)
        assert (code, reason) == (410, "Expired")
        assert message.startswith("The provided continue parameter is too old")


async def _watch(
    client: httpx.AsyncClient, params: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.stream("GET", URL, params={"watch": "true", **params}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


async def test_watch_resumes_after_a_resource_version(cluster: Cluster) -> None:
    async with http(cluster) as client:
        first = (await client.post(URL, json=gadget("a"))).json()
        await client.patch(
            f"{URL}/a",
            json={"resource": {"count": 2}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        await client.delete(f"{URL}/a")
        events = await _watch(client, {"resourceVersion": first["metadata"]["resourceVersion"]}, 2)
        assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
        assert events[0]["object"]["resource"]["count"] == 2
        assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
            events[0]["object"]["metadata"]["resourceVersion"]
        )


async def test_watch_without_version_starts_with_the_current_state(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await _seed(client, 2)
        events = await _watch(client, {"labelSelector": "parity=even"}, 1)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "g00")]
        initial = await _watch(
            client,
            {
                "sendInitialEvents": "true",
                "allowWatchBookmarks": "true",
                "resourceVersionMatch": "NotOlderThan",
            },
            3,
        )
        assert [e["type"] for e in initial] == ["ADDED", "ADDED", "BOOKMARK"]
        assert initial[2]["object"]["metadata"]["annotations"] == {
            "k8s.io/initial-events-end": "true"
        }


async def test_watch_sends_bookmarks_when_allowed(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        events = await _watch(
            client,
            {
                "resourceVersion": created["metadata"]["resourceVersion"],
                "allowWatchBookmarks": "True",
            },
            1,
        )
        assert events[0]["type"] == "BOOKMARK"
        assert events[0]["object"]["kind"] == "Gadget"
        assert int(events[0]["object"]["metadata"]["resourceVersion"]) >= int(
            created["metadata"]["resourceVersion"]
        )


async def test_watch_label_transitions_become_added_and_deleted(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        merge = {"Content-Type": "application/merge-patch+json"}
        await client.patch(f"{URL}/a", json={"metadata": {"labels": {"pick": "me"}}}, headers=merge)
        await client.patch(f"{URL}/a", json={"metadata": {"labels": {"pick": None}}}, headers=merge)
        events = await _watch(
            client,
            {"resourceVersion": created["metadata"]["resourceVersion"], "labelSelector": "pick=me"},
            2,
        )
        assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_too_old_versions_get_410_gone(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        await client.post(URL, json=gadget("b"))
        await cluster.faults.compact()
        events = await _watch(
            client, {"resourceVersion": created["metadata"]["resourceVersion"]}, 1
        )
        assert events[0]["type"] == "ERROR"
        status = events[0]["object"]
        assert (status["code"], status["reason"]) == (410, "Expired")
        assert status["message"].startswith(
            f"too old resource version: {created['metadata']['resourceVersion']} ("
        )


async def test_watch_timeout_ends_the_stream_cleanly(cluster: Cluster) -> None:
    async with http(cluster) as client:
        rv = (await client.get(URL)).json()["metadata"]["resourceVersion"]
        async with client.stream(
            "GET", URL, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "0"}
        ) as response:
            assert [line async for line in response.aiter_lines() if line] == []


async def test_table_and_metadata_representations(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await client.post(URL, json=gadget("a"))
        await client.patch(
            f"{URL}/a/status",
            json={
                "status": {
                    "conditions": [
                        {
                            "type": "ResourceReady",
                            "status": "True",
                            "reason": "r",
                            "message": "m",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ]
                }
            },
            headers={"Content-Type": "application/merge-patch+json"},
        )
        table = (
            await client.get(
                URL, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
            )
        ).json()
        assert table["kind"] == "Table"
        columns = [c["name"] for c in table["columnDefinitions"]]
        assert columns == [
            "Name",
            "Instance",
            "ResourceReady",
            "InferenceReady",
            "Replicas",
            "State",
            "Age",
        ]
        cells = table["rows"][0]["cells"]
        assert cells[:5] == ["a", "Standard_NC24ads_A100_v4", "True", None, 1]
        assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
        partial = (
            await client.get(
                URL,
                headers={
                    "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
                },
            )
        ).json()
        assert partial["kind"] == "PartialObjectMetadataList"
        assert list(partial["items"][0]) == ["kind", "apiVersion", "metadata"]
        pods = (
            await client.get(
                "/api/v1/namespaces/default/pods",
                headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            )
        ).json()
        assert [c["name"] for c in pods["columnDefinitions"]][:5] == [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
        ]
        yaml_body = await client.get(f"{URL}/a", headers={"Accept": "application/yaml"})
        assert yaml_body.headers["content-type"].startswith("application/yaml")
        assert "kind: Gadget" in yaml_body.text
