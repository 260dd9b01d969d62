"""Admission webhooks over HTTPS with a caBundle: mutation by JSON patch, denials worded as
kube-apiserver words them, failure policies, selectors, service references and version matching."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from kaito.cluster import Cluster
from kaito.tls import generate_serving_certificate
from tests.cluster._helpers import GADGETS, gadget, http, status_of

pytestmark = pytest.mark.anyio
URL = GADGETS.format(ns="default")
Review = dict[str, Any]


class HookServer:
    """An HTTPS AdmissionReview endpoint whose answer each test decides."""

    def __init__(self) -> None:
        self.certificate = generate_serving_certificate(["127.0.0.1", "hooks.default.svc"])
        self.reviews: list[Review] = []
        self.answer: Callable[[Review], dict[str, Any]] = lambda review: {"allowed": True}
        self.port = 0

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.certificate.ca.cert_pem).decode()

    async def handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.reviews.append(review)
        response = {"uid": review["request"]["uid"], **self.answer(review)}
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    server = HookServer()
    app = web.Application()
    app.router.add_post("/{path:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server.certificate.server_context())
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def configuration(kind: str, hooks: HookServer, **webhook: Any) -> dict[str, Any]:
    hook = {
        "name": "gadgets.testing.kaito.sh",
        "clientConfig": {
            "url": f"https://127.0.0.1:{hooks.port}/hook",
            "caBundle": hooks.ca_bundle,
        },
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["testing.kaito.sh"],
                "apiVersions": ["v1beta1"],
                "resources": ["gadgets"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **webhook,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "gadgets"},
        "webhooks": [hook],
    }


async def test_validating_denial_reaches_the_client_verbatim(
    cluster: Cluster, hooks: HookServer
) -> None:
    hooks.answer = lambda review: {
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "preset phi-9 is not supported"},
    }
    await cluster.client.create(configuration("ValidatingWebhookConfiguration", hooks))
    async with http(cluster) as client:
        denied = await client.post(URL, json=gadget("a"))
        assert status_of(denied) == (
            403,
            "Forbidden",
            'admission webhook "gadgets.testing.kaito.sh" denied the request: preset phi-9 is not supported',
        )
        assert (await client.get(f"{URL}/a")).status_code == 404
    request = hooks.reviews[0]["request"]
    assert request["operation"] == "CREATE"
    assert request["kind"] == {"group": "testing.kaito.sh", "version": "v1beta1", "kind": "Gadget"}
    assert request["resource"] == {
        "group": "testing.kaito.sh",
        "version": "v1beta1",
        "resource": "gadgets",
    }
    assert request["namespace"] == "default" and request["name"] == "a"
    assert request["object"]["resource"]["count"] == 1, "hooks see the defaulted object"
    assert request["userInfo"]["username"] == "system:admin"


async def test_denial_without_a_message(cluster: Cluster, hooks: HookServer) -> None:
    hooks.answer = lambda review: {"allowed": False}
    await cluster.client.create(configuration("ValidatingWebhookConfiguration", hooks))
    async with http(cluster) as client:
        denied = await client.post(URL, json=gadget("a"))
        assert status_of(denied)[0::2] == (
            400,
            'admission webhook "gadgets.testing.kaito.sh" denied the request without explanation',
        )


async def test_mutating_hooks_patch_the_object(cluster: Cluster, hooks: HookServer) -> None:
    patch = [
        {"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}},
        {"op": "replace", "path": "/resource/count", "value": 2},
    ]
    hooks.answer = lambda review: {
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    await cluster.client.create(configuration("MutatingWebhookConfiguration", hooks))
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        assert created["metadata"]["labels"] == {"mutated": "yes"}
        assert created["resource"]["count"] == 2
        hooks.answer = lambda review: {"allowed": True, "warnings": ["deprecated preset"]}
        updated = await client.patch(
            f"{URL}/a",
            json={"resource": {"count": 3}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert updated.headers["warning"] == '299 - "deprecated preset"'
    update = hooks.reviews[-1]["request"]
    assert update["operation"] == "UPDATE"
    assert (
        update["oldObject"]["resource"]["count"] == 2 and update["object"]["resource"]["count"] == 3
    )


async def test_failure_policy(cluster: Cluster, hooks: HookServer) -> None:
    broken = configuration(
        "ValidatingWebhookConfiguration",
        hooks,
        clientConfig={"url": "https://127.0.0.1:1/hook", "caBundle": hooks.ca_bundle},
    )
    await cluster.client.create(broken)
    async with http(cluster) as client:
        failed = await client.post(URL, json=gadget("a"))
        code, reason, message = status_of(failed)
        assert (code, reason) == (500, "InternalError")
        assert message.startswith(
            'Internal error occurred: failed calling webhook "gadgets.testing.kaito.sh": failed to call webhook: Post "https://127.0.0.1:1/hook?timeout=10s":'
        )
        broken["webhooks"][0]["failurePolicy"] = "Ignore"
        await cluster.client.apply(broken, force=True)
        assert (await client.post(URL, json=gadget("a"))).status_code == 201


async def test_untrusted_certificates_fail_the_call(cluster: Cluster, hooks: HookServer) -> None:
    other = generate_serving_certificate(["127.0.0.1"])
    await cluster.client.create(
        configuration(
            "ValidatingWebhookConfiguration",
            hooks,
            clientConfig={
                "url": f"https://127.0.0.1:{hooks.port}/hook",
                "caBundle": base64.b64encode(other.ca.cert_pem).decode(),
            },
        )
    )
    async with http(cluster) as client:
        failed = await client.post(URL, json=gadget("a"))
        assert status_of(failed)[:2] == (500, "InternalError")
        assert "certificate verify failed" in failed.json()["message"]
    assert hooks.reviews == []


async def test_selectors_pick_which_requests_are_reviewed(
    cluster: Cluster, hooks: HookServer
) -> None:
    await cluster.create_namespace("watched", labels={"review": "yes"})
    await cluster.client.create(
        configuration(
            "ValidatingWebhookConfiguration",
            hooks,
            namespaceSelector={"matchLabels": {"review": "yes"}},
            objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
        )
    )
    async with http(cluster) as client:
        await client.post(URL, json=gadget("unwatched-namespace"))
        await client.post(
            GADGETS.format(ns="watched"),
            json=gadget("skipped", metadata={"name": "skipped", "labels": {"skip": "1"}}),
        )
        await client.post(GADGETS.format(ns="watched"), json=gadget("reviewed"))
    assert [r["request"]["name"] for r in hooks.reviews] == ["reviewed"]


async def test_service_references_resolve_through_endpoints(
    cluster: Cluster, hooks: HookServer
) -> None:
    await cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hooks"},
            "spec": {"ports": [{"port": 443, "targetPort": hooks.port}]},
        }
    )
    await cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "hooks"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": hooks.port}]}],
        }
    )
    await cluster.client.create(
        configuration(
            "ValidatingWebhookConfiguration",
            hooks,
            clientConfig={
                "service": {"namespace": "default", "name": "hooks", "path": "/validate"},
                "caBundle": hooks.ca_bundle,
            },
        )
    )
    async with http(cluster) as client:
        assert (await client.post(URL, json=gadget("a"))).status_code == 201
    assert len(hooks.reviews) == 1


async def test_equivalent_versions_and_status_rules(cluster: Cluster, hooks: HookServer) -> None:
    rules = [
        {
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": ["testing.kaito.sh"],
            "apiVersions": ["v1beta1"],
            "resources": ["gadgets/status"],
        }
    ]
    await cluster.client.create(configuration("ValidatingWebhookConfiguration", hooks, rules=rules))
    async with http(cluster) as client:
        old = {**gadget("a"), "apiVersion": "testing.kaito.sh/v1alpha1"}
        await client.post("/apis/testing.kaito.sh/v1alpha1/namespaces/default/gadgets", json=old)
        assert hooks.reviews == [], "the main resource is not covered by a gadgets/status rule"
        await client.patch(
            "/apis/testing.kaito.sh/v1alpha1/namespaces/default/gadgets/a/status",
            json={"status": {"state": "x"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    request = hooks.reviews[0]["request"]
    assert request["subResource"] == "status"
    assert (
        request["kind"]["version"] == "v1beta1" and request["requestKind"]["version"] == "v1alpha1"
    )
    assert request["object"]["apiVersion"] == "testing.kaito.sh/v1beta1"


async def test_registered_service_endpoints_route_webhook_calls(
    cluster: Cluster, hooks: HookServer
) -> None:
    cluster.register_service_endpoint("default", "hooks", f"https://127.0.0.1:{hooks.port}")
    await cluster.client.create(
        configuration(
            "ValidatingWebhookConfiguration",
            hooks,
            clientConfig={
                "service": {"namespace": "default", "name": "hooks", "path": "/validate"},
                "caBundle": hooks.ca_bundle,
            },
        )
    )
    async with http(cluster) as client:
        assert (await client.post(URL, json=gadget("a"))).status_code == 201
    assert len(hooks.reviews) == 1
