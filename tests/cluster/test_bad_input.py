"""Bad requests get kube-apiserver's status codes and reasons, and nothing half-written is stored."""

from __future__ import annotations

import pytest

from kaito.cluster import Cluster
from tests.cluster._helpers import GADGETS, gadget, http, status_of

pytestmark = pytest.mark.anyio
URL = GADGETS.format(ns="default")
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


async def test_bodies_that_do_not_parse(cluster: Cluster) -> None:
    async with http(cluster) as client:
        garbage = await client.post(
            URL, content=b"not json at all", headers={"Content-Type": "application/json"}
        )
        assert status_of(garbage)[:2] == (400, "BadRequest")
        bad_yaml = await client.post(
            URL, content=b"a: [unclosed", headers={"Content-Type": "application/yaml"}
        )
        assert status_of(bad_yaml)[:2] == (400, "BadRequest")
        array = await client.post(URL, json=[1, 2])
        assert status_of(array)[:2] == (400, "BadRequest")
        proto = await client.post(
            URL, content=b"\x00", headers={"Content-Type": "application/vnd.kubernetes.protobuf"}
        )
        assert status_of(proto)[:2] == (415, "UnsupportedMediaType")


async def test_yaml_bodies_are_accepted(cluster: Cluster) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dated}\ndata: {when: 2024-01-01}\n"
    async with http(cluster) as client:
        created = await client.post(
            CONFIGMAPS, content=body, headers={"Content-Type": "application/yaml"}
        )
        assert created.status_code == 201
        assert created.json()["data"] == {"when": "2024-01-01"}


async def test_kind_and_api_version_mismatches(cluster: Cluster) -> None:
    async with http(cluster) as client:
        version = await client.post(URL, json={**gadget("a"), "apiVersion": "testing.kaito.sh/v9"})
        assert status_of(version) == (
            400,
            "BadRequest",
            "the API version in the data (testing.kaito.sh/v9) does not match the expected API version (testing.kaito.sh/v1beta1)",
        )
        kind = await client.post(URL, json={**gadget("a"), "kind": "Gizmo"})
        assert status_of(kind) == (
            422,
            "Invalid",
            'Gizmo.testing.kaito.sh "a" is invalid: kind: Invalid value: "Gizmo": must be Gadget',
        )
        builtin = await client.post(
            CONFIGMAPS, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
        )
        assert status_of(builtin)[:2] == (400, "BadRequest")


async def test_names_must_be_dns_subdomains(cluster: Cluster) -> None:
    async with http(cluster) as client:
        invalid = await client.post(URL, json=gadget("Not_Valid"))
        code, reason, message = status_of(invalid)
        assert (code, reason) == (422, "Invalid")
        assert message.startswith(
            'Gadget.testing.kaito.sh "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain'
        )
        cause = invalid.json()["details"]["causes"][0]
        assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "metadata.name")
        missing = await client.post(URL, json={**gadget(""), "metadata": {}})
        assert status_of(missing)[2].endswith(
            "metadata.name: Required value: name or generateName is required"
        )
        generated = await client.post(
            URL, json={**gadget(""), "metadata": {"generateName": "auto-"}}
        )
        assert generated.status_code == 201
        assert generated.json()["metadata"]["name"].startswith("auto-")
        service = await client.post(
            "/api/v1/namespaces/default/services",
            json={
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "1svc"},
                "spec": {"ports": [{"port": 80}]},
            },
        )
        assert "a DNS-1035 label must consist of" in status_of(service)[2]


async def test_schema_violations_list_every_cause(cluster: Cluster) -> None:
    async with http(cluster) as client:
        body = gadget("a", resource={"instanceType": "bad sku", "count": 99})
        body["inference"]["preset"]["accessMode"] = "secret"
        response = await client.post(URL, json=body)
        code, reason, message = status_of(response)
        assert (code, reason) == (422, "Invalid")
        fields = [c["field"] for c in response.json()["details"]["causes"]]
        assert fields == ["resource.instanceType", "resource.count", "inference.preset.accessMode"]
        assert message.startswith('Gadget.testing.kaito.sh "a" is invalid: [')


async def test_field_validation_strict_warn_ignore(cluster: Cluster) -> None:
    body = gadget("a", bogus=1)
    body["resource"]["typo"] = True
    async with http(cluster) as client:
        strict = await client.post(URL, params={"fieldValidation": "Strict"}, json=body)
        assert status_of(strict) == (
            400,
            "BadRequest",
            'Gadget in version "v1beta1" cannot be handled as a Gadget: strict decoding error: '
            'unknown field "bogus", unknown field "resource.typo"',
        )
        warned = await client.post(URL, params={"fieldValidation": "Warn"}, json=body)
        assert warned.status_code == 201
        assert warned.headers.get_list("warning") == [
            '299 - "unknown field \\"bogus\\""',
            '299 - "unknown field \\"resource.typo\\""',
        ]
        assert "bogus" not in warned.json()
        body["metadata"]["name"] = "b"
        ignored = await client.post(URL, params={"fieldValidation": "Ignore"}, json=body)
        assert ignored.status_code == 201 and "warning" not in ignored.headers
        wrong = await client.post(URL, params={"fieldValidation": "Loud"}, json=body)
        assert wrong.status_code == 400


async def test_bodies_over_3_mib_are_refused(cluster: Cluster) -> None:
    async with http(cluster) as client:
        big = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big"},
            "data": {"a": "x" * (3 * 1024 * 1024)},
        }
        response = await client.post(CONFIGMAPS, json=big)
        assert status_of(response) == (
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )


async def test_unknown_resources_and_missing_namespaces(cluster: Cluster) -> None:
    async with http(cluster) as client:
        unknown = await client.get("/apis/testing.kaito.sh/v1beta1/namespaces/default/gizmos")
        assert status_of(unknown)[:2] == (404, "NotFound")
        assert (await client.get("/apis/nope.io/v1")).status_code == 404
        missing = await client.post(GADGETS.format(ns="nope"), json=gadget("a"))
        assert status_of(missing) == (404, "NotFound", 'namespaces "nope" not found')
        cluster_scoped = await client.get("/api/v1/namespaces/default/nodes")
        assert cluster_scoped.status_code == 404
        assert (await client.request("PUT", URL, json=gadget("a"))).status_code == 405


async def test_failed_writes_leave_nothing_behind(cluster: Cluster) -> None:
    async with http(cluster) as client:
        before = (await client.get(URL)).json()["metadata"]["resourceVersion"]
        await client.post(URL, json=gadget("Bad_Name"))
        await client.post(URL, json=gadget("x", resource={"count": 1}))
        await client.post(URL, params={"fieldValidation": "Strict"}, json=gadget("y", junk=1))
        after = (await client.get(URL)).json()
        assert after["items"] == []
        assert after["metadata"]["resourceVersion"] == before


async def test_terminating_namespaces_refuse_new_objects(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await client.post(
            "/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}},
        )
        await client.post(
            GADGETS.format(ns="doomed"),
            json=gadget("held", metadata={"name": "held", "finalizers": ["x.io/hold"]}),
        )
        deleted = await client.delete("/api/v1/namespaces/doomed")
        assert deleted.json()["status"]["phase"] == "Terminating"
        refused = await client.post(GADGETS.format(ns="doomed"), json=gadget("new"))
        code, reason, message = status_of(refused)
        assert (code, reason) == (403, "Forbidden")
        assert (
            "unable to create new content in namespace doomed because it is being terminated"
            in message
        )
