"""Kubernetes protobuf over HTTP: a Go-style client's requests and the server's protobuf
responses (objects, lists, errors, watch streams), and what kube-apiserver refuses."""

from __future__ import annotations

import base64
import struct
from typing import Any

import anyio
import pytest

from kaito.cluster import Cluster
from kaito.cluster._protobuf import decode_object, decode_watch_frames, encode_object
from tests.cluster._helpers import GADGETS, gadget, http, status_of

pytestmark = pytest.mark.anyio
PROTOBUF = "application/vnd.kubernetes.protobuf"
GO_CLIENT = {"Content-Type": PROTOBUF, "Accept": f"{PROTOBUF}, application/json"}


# A Go client's encoder, written out by hand (independent of the server's table-driven codec):
# proto2 with every non-pointer scalar written, fields in number order, map keys sorted.
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode())


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _object_meta(name: str, labels: dict[str, str]) -> bytes:
    meta = b"".join(_str(n, v) for n, v in ((1, name), (2, ""), (3, ""), (4, ""), (5, ""), (6, "")))
    meta += _int(7, 0) + _bytes(8, b"")
    for key in sorted(labels):
        meta += _bytes(11, _str(1, key) + _str(2, labels[key]))
    return meta


def _go_secret(name: str) -> bytes:
    secret = _bytes(1, _object_meta(name, {"app": "go"}))
    secret += _bytes(2, _str(1, ".dockerconfigjson") + _bytes(2, b'{"auths":{}}'))
    secret += _str(3, "kubernetes.io/dockerconfigjson")
    secret += _int(5, 1)  # immutable: *bool true
    secret += _varint(99 << 3) + _varint(7)  # a field this server does not know: dropped
    unknown = _bytes(1, _str(1, "v1") + _str(2, "Secret")) + _bytes(2, secret)
    return b"k8s\x00" + unknown + _str(3, "") + _str(4, "")


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A minimal protobuf reader for the test's own checks."""
    out: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        if key & 7 == 0:
            value, pos = _read_varint(data, pos)
        else:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        out.setdefault(key >> 3, []).append(value)
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


async def test_a_go_style_protobuf_request_round_trips(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = await client.post(
            "/api/v1/namespaces/default/secrets", content=_go_secret("go"), headers=GO_CLIENT
        )
        assert created.status_code == 201, created.text
        assert created.headers["Content-Type"] == PROTOBUF
        assert created.content.startswith(b"k8s\x00")
        envelope = _fields(created.content[4:])
        assert _fields(envelope[1][0]) == {1: [b"v1"], 2: [b"Secret"]}
        secret = _fields(envelope[2][0])
        meta = _fields(secret[1][0])
        assert meta[1] == [b"go"]
        assert meta[3] == [b"default"]
        assert meta[5][0]  # uid assigned
        assert secret[3] == [b"kubernetes.io/dockerconfigjson"]
        assert secret[5] == [1]
        as_json = (await client.get("/api/v1/namespaces/default/secrets/go")).json()
        assert as_json["data"] == {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}
        assert as_json["type"] == "kubernetes.io/dockerconfigjson"
        assert as_json["immutable"] is True
        assert as_json["metadata"]["labels"] == {"app": "go"}
        again = await client.get(
            "/api/v1/namespaces/default/secrets/go", headers={"Accept": PROTOBUF}
        )
        assert decode_object(again.content) == as_json


async def test_lists_errors_and_scale_in_protobuf(cluster: Cluster) -> None:
    async with http(cluster) as client:
        for name in ("a", "b"):
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
            await client.post(
                "/api/v1/namespaces/default/configmaps",
                content=encode_object(body),
                headers=GO_CLIENT,
            )
        listed = await client.get(
            "/api/v1/namespaces/default/configmaps", headers={"Accept": PROTOBUF}
        )
        decoded = decode_object(listed.content)
        assert decoded["kind"] == "ConfigMapList"
        assert [item["metadata"]["name"] for item in decoded["items"]] == ["a", "b"]
        assert decoded["metadata"]["resourceVersion"]
        missing = await client.get(
            "/api/v1/namespaces/default/configmaps/nope", headers={"Accept": PROTOBUF}
        )
        assert missing.status_code == 404
        status = decode_object(missing.content)
        assert status["kind"] == "Status"
        assert status["reason"] == "NotFound"
        assert status["message"] == 'configmaps "nope" not found'
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
        made = await client.post(
            "/apis/apps/v1/namespaces/default/deployments",
            content=encode_object(deployment),
            headers=GO_CLIENT,
        )
        assert made.status_code == 201
        assert decode_object(made.content)["spec"]["replicas"] == 0
        scale = await client.get(
            "/apis/apps/v1/namespaces/default/deployments/d/scale", headers={"Accept": PROTOBUF}
        )
        assert decode_object(scale.content)["kind"] == "Scale"


async def test_protobuf_watch_stream(cluster: Cluster) -> None:
    async with http(cluster) as client:
        url = "/api/v1/namespaces/default/configmaps"
        listed = (await client.get(url)).json()
        rv = listed["metadata"]["resourceVersion"]
        async with client.stream(
            "GET",
            url,
            params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "5"},
            headers={"Accept": f"{PROTOBUF};stream=watch"},
        ) as stream:
            assert stream.headers["Content-Type"] == f"{PROTOBUF};stream=watch"
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}}
            await client.post(url, json=body)
            await client.delete(f"{url}/w")
            data = b""
            with anyio.fail_after(5):
                async for chunk in stream.aiter_bytes():
                    data += chunk
                    if _frames(data) >= 2:
                        break
        events = list(decode_watch_frames(data[: _frame_end(data, 2)]))
        assert [(t, o["metadata"]["name"]) for t, o in events] == [
            ("ADDED", "w"),
            ("DELETED", "w"),
        ]


def _frames(data: bytes) -> int:
    count = pos = 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        if pos + 4 + size > len(data):
            break
        pos += 4 + size
        count += 1
    return count


def _frame_end(data: bytes, count: int) -> int:
    pos = 0
    for _ in range(count):
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4 + size
    return pos


async def test_what_kube_apiserver_refuses_in_protobuf(cluster: Cluster) -> None:
    async with http(cluster) as client:
        custom = await client.post(
            GADGETS.format(ns="default"),
            content=b"k8s\x00" + _bytes(2, b""),
            headers={"Content-Type": PROTOBUF},
        )
        assert status_of(custom)[:2] == (415, "UnsupportedMediaType")
        await client.post(GADGETS.format(ns="default"), json=gadget("g"))
        only_protobuf = await client.get(
            GADGETS.format(ns="default") + "/g", headers={"Accept": PROTOBUF}
        )
        assert only_protobuf.status_code == 406
        refused = await client.post(
            GADGETS.format(ns="default"), json=gadget("never"), headers={"Accept": PROTOBUF}
        )
        assert refused.status_code == 406
        missing = await client.get(GADGETS.format(ns="default") + "/never")
        assert missing.status_code == 404  # negotiated before the write
        either = await client.get(
            GADGETS.format(ns="default") + "/g", headers={"Accept": f"{PROTOBUF}, application/json"}
        )
        assert either.status_code == 200
        assert either.json()["kind"] == "Gadget"
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}
        await client.post("/api/v1/namespaces/default/configmaps", json=body)
        patch = await client.patch(
            "/api/v1/namespaces/default/configmaps/p",
            content=encode_object(body),
            headers={"Content-Type": PROTOBUF},
        )
        assert status_of(patch)[:2] == (415, "UnsupportedMediaType")
        no_magic = await client.post(
            "/api/v1/namespaces/default/configmaps",
            content=b"\x0a\x00",
            headers={"Content-Type": PROTOBUF},
        )
        assert status_of(no_magic) == (
            400,
            "BadRequest",
            "provided data does not appear to be a protobuf message, expected prefix "
            "[107 56 115 0]",
        )
        truncated = await client.post(
            "/api/v1/namespaces/default/configmaps",
            content=encode_object(body)[:-8],
            headers={"Content-Type": PROTOBUF},
        )
        assert status_of(truncated)[:2] == (400, "BadRequest")
        wrong_kind = await client.post(
            "/api/v1/namespaces/default/configmaps",
            content=encode_object(
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
            ),
            headers={"Content-Type": PROTOBUF},
        )
        assert status_of(wrong_kind)[:2] == (400, "BadRequest")
