"""Hostile request bodies (issue 13): YAML alias bombs, deep nesting, numbers beyond int64 and
duplicate keys get kube-apiserver's 4xx answers, never a 500, and the server's memory comes back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from kaito.cluster import Cluster
from tests.cluster._helpers import GADGETS, gadget, http, status_of
from tests.cluster._process import server_process

pytestmark = pytest.mark.anyio
URL = GADGETS.format(ns="default")
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
YAML = {"Content-Type": "application/yaml"}


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs" in a field that keeps whatever it is given (a Gadget's
    ``inference.config``): under 1 KB of YAML, 9**levels strings once expanded."""
    lines = [
        "apiVersion: testing.kaito.sh/v1beta1",
        "kind: Gadget",
        "metadata: {name: bomb}",
        "resource: {instanceType: Standard_NC24ads_A100_v4}",
        "inference:",
        "  config:",
        '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    names = "abcdefghijklmnop"
    for prev, name in itertools.pairwise(names[:levels]):
        lines.append(f"    {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def aliased_config_map(name: str, values: int, size: int) -> str:
    """A legal ConfigMap whose ``data`` repeats one aliased string ``values`` times."""
    lines = ["apiVersion: v1", "kind: ConfigMap", f"metadata: {{name: {name}}}", "data:"]
    lines.append(f"  k0: &v {'x' * size}")
    lines += [f"  k{i}: *v" for i in range(1, values)]
    return "\n".join(lines) + "\n"


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


async def test_an_alias_bomb_is_refused_with_400(cluster: Cluster) -> None:
    bomb = alias_bomb()
    assert len(bomb) < 1024
    async with http(cluster) as client:
        response = await client.post(URL, content=bomb, headers=YAML)
        code, reason, message = status_of(response)
        assert (code, reason) == (400, "BadRequest")
        assert "document contains excessive aliasing" in message
        assert (await client.get(f"{URL}/bomb")).status_code == 404
        recursive = await client.post(
            CONFIGMAPS,
            content="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r}\nx: &x [*x]\n",
            headers=YAML,
        )
        assert status_of(recursive)[:2] == (400, "BadRequest")


async def test_aliases_within_the_body_limit_are_expanded(cluster: Cluster) -> None:
    async with http(cluster) as client:
        response = await client.post(
            CONFIGMAPS, content=aliased_config_map("shared", 50, 1000), headers=YAML
        )
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        assert len(data) == 50 and set(data.values()) == {"x" * 1000}


async def test_deep_documents_get_400_not_500(cluster: Cluster) -> None:
    async with http(cluster) as client:
        fine = gadget("fine", inference={"config": nested(150)})
        assert (await client.post(URL, json=fine)).status_code == 201
        assert (await client.get(f"{URL}/fine")).json()["inference"]["config"] == nested(150)
        for depth in (250, 300, 600, 1200):
            deep = gadget("deep", inference={"config": "DEEP"})
            raw = json.dumps(deep).replace('"DEEP"', '{"n": ' * depth + "1" + "}" * depth)
            response = await client.post(URL, content=raw)
            code, reason, message = status_of(response)
            assert (code, reason) == (400, "BadRequest"), (depth, message)
            assert "exceeded max depth of 200" in message
        yaml_deep = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\nx: " + "[" * 300 + "]" * 300
        )
        assert status_of(await client.post(CONFIGMAPS, content=yaml_deep, headers=YAML))[0] == 400


async def test_a_json_patch_that_nests_too_deep_is_refused(cluster: Cluster) -> None:
    async with http(cluster) as client:
        body = gadget("grow", inference={"config": nested(150)})
        assert (await client.post(URL, json=body)).status_code == 201
        path = "/inference/config" + "/n" * 149
        patch = [{"op": "add", "path": path + "/more", "value": nested(150)}]
        response = await client.patch(
            f"{URL}/grow",
            content=httpx.Request("PATCH", "/", json=patch).content,
            headers={"Content-Type": "application/json-patch+json"},
        )
        code, reason, _ = status_of(response)
        assert (code, reason) == (422, "Invalid")
        copies = [{"op": "copy", "from": "/inference", "path": f"/x{i}"} for i in range(10_001)]
        too_many = await client.patch(
            f"{URL}/grow",
            content=httpx.Request("PATCH", "/", json=copies).content,
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert status_of(too_many)[:2] == (413, "RequestEntityTooLarge")
        large = gadget("large", inference={"config": {"blob": "x" * 100_000}})
        assert (await client.post(URL, json=large)).status_code == 201
        doubling = [{"op": "copy", "from": "/inference", "path": f"/x{i}"} for i in range(40)]
        grown = await client.patch(
            f"{URL}/large",
            content=httpx.Request("PATCH", "/", json=doubling).content,
            headers={"Content-Type": "application/json-patch+json"},
        )
        code, reason, message = status_of(grown)
        assert (code, reason) == (413, "RequestEntityTooLarge")
        assert "accumulated size increase of copy" in message


async def test_integers_beyond_int64_are_refused_by_the_schema(cluster: Cluster) -> None:
    async with http(cluster) as client:
        body = gadget("big", resource={"instanceType": "x", "count": 99999999999999999999})
        response = await client.post(URL, content=httpx.Request("POST", "/", json=body).content)
        code, reason, message = status_of(response)
        assert (code, reason) == (422, "Invalid")
        assert 'resource.count in body must be of type integer: "number"' in message
        raw = (
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},'
            b'"data":{"a":"1"},"binaryData":{},"x":1e999}'
        )
        assert status_of(await client.post(CONFIGMAPS, content=raw))[0] == 400


async def test_duplicate_keys_are_strict_decoding_errors(cluster: Cluster) -> None:
    json_body = (
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"e"},'
        b'"data":{"k":"1"}}'
    )
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: f}\ndata: {k: a, k: b}\n"
    async with http(cluster) as client:
        strict = await client.post(
            CONFIGMAPS, params={"fieldValidation": "Strict"}, content=json_body
        )
        assert status_of(strict) == (
            400,
            "BadRequest",
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
            'duplicate field "metadata.name"',
        )
        warned = await client.post(CONFIGMAPS, content=json_body)
        assert warned.status_code == 201
        assert warned.json()["metadata"]["name"] == "e"
        assert warned.headers.get_list("warning") == ['299 - "duplicate field \\"metadata.name\\""']
        strict_yaml = await client.post(
            CONFIGMAPS, params={"fieldValidation": "Strict"}, content=yaml_body, headers=YAML
        )
        assert status_of(strict_yaml)[2].endswith('strict decoding error: duplicate field "data.k"')


async def test_metadata_of_the_wrong_shape_is_a_400(cluster: Cluster) -> None:
    async with http(cluster) as client:
        for metadata in ("name", ["a"], {"name": "x", "labels": {"a": 1}}):
            response = await client.post(URL, json={**gadget("m"), "metadata": metadata})
            code, reason, message = status_of(response)
            assert (code, reason) == (400, "BadRequest")
            assert message.startswith(
                'Gadget in version "v1beta1" cannot be handled as a Gadget: metadata: Invalid value'
            )


# -- the server's memory ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[httpx.Client, psutil.Process]]:
    """A cluster in a child process: an HTTP client for it and its process (for RSS)."""
    with server_process() as child, child.client(timeout=30) as client:
        yield client, psutil.Process(child.pid)


def _rss(process: psutil.Process) -> int:
    return int(process.memory_info().rss)


@pytest.mark.anyio(False)
def test_memory_returns_to_baseline_after_a_bomb_and_after_delete(
    server: tuple[httpx.Client, psutil.Process],
) -> None:
    client, process = server
    # Warm up every code path first (YAML bodies, create, get, delete).
    for i in range(20):
        name = f"warm-{i}"
        assert client.post(CONFIGMAPS, content=aliased_config_map(name, 5, 100), headers=YAML)
        assert client.get(f"{CONFIGMAPS}/{name}").status_code == 200
        assert client.delete(f"{CONFIGMAPS}/{name}").status_code == 200
    baseline = _rss(process)
    for _ in range(3):
        refused = client.post(URL, content=alias_bomb(), headers=YAML)
        assert refused.status_code == 400
    after_bomb = _rss(process)
    # A legal 1 MiB object from 12 KiB of YAML (aliases within the limit), then deleted.
    big = client.post(CONFIGMAPS, content=aliased_config_map("big", 1000, 1000), headers=YAML)
    assert big.status_code == 201, big.text[:300]
    assert client.delete(f"{CONFIGMAPS}/big").status_code == 200
    after_delete = _rss(process)
    # Many such objects created and deleted: the history keeps a bounded number of bytes.
    for i in range(20):
        name = f"churn-{i}"
        created = client.post(
            CONFIGMAPS, content=aliased_config_map(name, 2000, 1000), headers=YAML
        )
        assert created.status_code == 201
        assert client.delete(f"{CONFIGMAPS}/{name}").status_code == 200
    after_churn = _rss(process)
    mib = 2**20
    print(
        f"server RSS: baseline={baseline / mib:.1f} MiB after_3_bombs={after_bomb / mib:.1f} MiB "
        f"after_1MiB_object_deleted={after_delete / mib:.1f} MiB "
        f"after_20x2MiB_created_and_deleted={after_churn / mib:.1f} MiB"
    )
    assert after_bomb <= baseline * 1.10
    assert after_delete <= baseline * 1.10
    assert after_churn <= baseline + 80 * mib  # the 32 MiB history budget and allocator slack
