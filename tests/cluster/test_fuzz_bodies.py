"""Fuzzing the API server's decoding and patch paths (hypothesis) over HTTP: whatever the body,
media type or patch, the answer is a ``Status`` below 500 or a success, and the server lives on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaito.cluster import ThreadedCluster, cluster_in_thread
from tests.cluster._helpers import GADGETS, gadget
from tests.cluster.conftest import GADGETS_CRD
from tests.support.fuzz import FuzzBudget, fuzz_seconds, hypothesis_budget

pytestmark = pytest.mark.fuzz

URL = GADGETS.format(ns="default")
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MEDIA = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "metadata",
                    "name",
                    "resource",
                    "inference",
                    "config",
                    "count",
                    "op",
                    "path",
                    "value",
                    "from",
                    "$patch",
                    "spec",
                    "x",
                ]
            )
            | st.text(max_size=6),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=25,
)
OPS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
        "path": st.sampled_from(
            [
                "",
                "/",
                "/inference",
                "/inference/config",
                "/inference/config/a",
                "/resource/count",
                "/metadata/labels",
                "/x/-",
                "/a~1b",
                "/0",
            ]
        ),
    },
    optional={"value": JSONISH, "from": st.sampled_from(["/inference", "/resource", "/nope"])},
)


def bodies() -> st.SearchStrategy[bytes]:
    deep = st.integers(min_value=1, max_value=400).map(
        lambda n: (
            '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"x":'
            + "[" * n
            + "]" * n
            + "}"
        ).encode()
    )
    aliases = st.integers(min_value=1, max_value=9).map(
        lambda n: (
            "metadata: {name: a}\nx0: &x0 [a, a, a, a, a, a, a, a, a]\n"
            + "".join(f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]\n" for i in range(1, n))
        ).encode()
    )
    return st.one_of(
        st.binary(max_size=200),
        JSONISH.map(lambda v: json.dumps(v).encode()),
        st.lists(OPS, max_size=5).map(lambda v: json.dumps(v).encode()),
        st.builds(lambda v: json.dumps(gadget("g", inference={"config": v})).encode(), JSONISH),
        deep,
        aliases,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ThreadedCluster, httpx.Client]]:
    with cluster_in_thread(crds=[GADGETS_CRD]) as cluster:
        c = cluster.cluster
        headers = {"Authorization": f"Bearer {c.token}"} if c.token else {}
        with httpx.Client(
            base_url=c.url, headers=headers, verify=c.client_ssl_context() or True, timeout=30
        ) as client:
            yield cluster, client


def _request(
    client: httpx.Client, method: str, url: str, *, media: str, body: bytes, params: dict[str, Any]
) -> httpx.Response:
    headers = {"Content-Type": media} if media else {}
    return client.request(method, url, content=body, headers=headers, params=params)


def test_api_server_decoding_and_patch_fuzz(server: tuple[ThreadedCluster, httpx.Client]) -> None:
    _, client = server
    base = client.post(URL, json=gadget("target", inference={"config": {"a": 1}}))
    assert base.status_code == 201, base.text
    budget = FuzzBudget()

    @settings(hypothesis_budget(), max_examples=max(20, int(25 * fuzz_seconds())))
    @given(
        method=st.sampled_from(["POST", "PUT", "PATCH"]),
        target=st.sampled_from([URL, CONFIGMAPS]),
        media=st.sampled_from(MEDIA),
        body=bodies(),
        strict=st.sampled_from(["Strict", "Warn", "Ignore"]),
    )
    def run(method: str, target: str, media: str, body: bytes, strict: str) -> None:
        if not budget.spend():
            return
        url = target if method == "POST" else f"{URL}/target"
        params = {"dryRun": "All", "fieldValidation": strict}
        if media == "application/apply-patch+yaml":
            params["fieldManager"] = "fuzz"
        response = _request(client, method, url, media=media, body=body, params=params)
        assert response.status_code < 500, (method, media, body[:300], response.text[:500])
        if response.status_code >= 400:
            status = response.json()
            assert status["kind"] == "Status" and status["code"] == response.status_code

    run()
    assert client.get("/version").status_code == 200
    assert client.get(f"{URL}/target").json()["inference"]["config"] == {"a": 1}
    budget.report("API server bodies and patches")
