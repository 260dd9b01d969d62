"""Authentication and authorisation over HTTP: 401 and 403 in kube-apiserver's words, client
certificates, ServiceAccount tokens (TokenRequest, audiences, expiry, binding), impersonation and
the review APIs."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from kaito.cluster import Cluster, start_cluster
from kaito.cluster._auth import issue_client_certificate
from tests.cluster._helpers import http, status_of

pytestmark = pytest.mark.anyio
PODS = "/api/v1/namespaces/default/pods"


class FakeClock:
    """The cluster's time source, moved by the test."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def secure(clock: FakeClock) -> AsyncIterator[Cluster]:
    """A TLS cluster with RBAC enforced."""
    async with start_cluster(
        tls=True, authorization="RBAC", controllers=False, clock=clock
    ) as cluster:
        await cluster.client.create(
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "robot", "namespace": "default"}}
        )  # fmt: skip
        yield cluster


def _client(cluster: Cluster, *, token: str | None = None, cert: Any = None) -> httpx.AsyncClient:
    context = cluster.client_ssl_context()
    assert context is not None
    if cert is not None:
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "c.pem").write_bytes(cert.cert_pem)
            Path(directory, "k.pem").write_bytes(cert.key_pem)
            context.load_cert_chain(Path(directory, "c.pem"), Path(directory, "k.pem"))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=cluster.url, verify=context, headers=headers, timeout=10)


async def _token(cluster: Cluster, name: str = "robot", **spec: Any) -> dict[str, Any]:
    async with http(cluster) as admin:
        response = await admin.post(
            f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
    assert response.status_code in (201, 404, 422), response.text
    result: dict[str, Any] = response.json()
    return result


async def _whoami(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()["status"]["userInfo"]
    return user


async def test_anonymous_requests_get_401_but_for_public_paths(secure: Cluster) -> None:
    async with _client(secure) as anonymous:
        denied = await anonymous.get("/api/v1/namespaces")
        assert status_of(denied) == (401, "Unauthorized", "Unauthorized")
        assert (await anonymous.get("/apis")).status_code == 401
        for path in ("/version", "/healthz", "/livez", "/readyz"):
            assert (await anonymous.get(path)).status_code == 200, path
    async with _client(secure, token="not-a-token") as wrong:
        assert (await wrong.get("/api/v1/namespaces")).status_code == 401
    async with http(secure) as admin:
        assert (await admin.get("/api/v1/namespaces")).status_code == 200
        assert await _whoami(admin) == {
            "username": "kaito-admin",
            "groups": ["system:masters", "system:authenticated"],
        }


async def test_client_certificates_name_the_user_and_groups(secure: Cluster) -> None:
    assert secure.certificate is not None
    jane = issue_client_certificate(secure.certificate.ca, "jane", ["devs"])
    async with _client(secure, cert=jane) as client:
        assert await _whoami(client) == {
            "username": "jane",
            "groups": ["devs", "system:authenticated"],
        }
        forbidden = await client.get(PODS)
        assert status_of(forbidden) == (
            403,
            "Forbidden",
            'pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the '
            'namespace "default"',
        )
        assert forbidden.json()["details"] == {"kind": "pods"}
        named = await client.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
        assert status_of(named)[2] == (
            'deployments.apps "coredns" is forbidden: User "jane" cannot get resource '
            '"deployments" in API group "apps" in the namespace "kube-system"'
        )
        nodes = await client.get("/api/v1/nodes")
        assert status_of(nodes)[2].endswith('in API group "" at the cluster scope')
        path = await client.get("/metrics")
        assert status_of(path)[2] == 'forbidden: User "jane" cannot get path "/metrics"'
        assert (await client.get("/api")).status_code == 200  # system:discovery


async def test_token_request_tokens_authenticate_as_the_service_account(secure: Cluster) -> None:
    with capture_logs() as logs:
        issued = await _token(secure, expirationSeconds=1200)
    token = issued["status"]["token"]
    assert issued["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    assert issued["status"]["expirationTimestamp"] == "2026-01-01T00:20:00Z"
    assert token not in repr(logs)
    async with _client(secure, token=token) as robot:
        me = await _whoami(robot)
        assert me["username"] == "system:serviceaccount:default:robot"
        assert me["groups"] == [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated",
        ]
        assert me["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
        assert status_of(await robot.get(PODS))[2] == (
            'pods is forbidden: User "system:serviceaccount:default:robot" cannot list resource '
            '"pods" in API group "" in the namespace "default"'
        )
    short = await _token(secure, expirationSeconds=60)
    assert short["code"] == 422
    assert short["message"] == (
        'TokenRequest.authentication.k8s.io "robot" is invalid: spec.expirationSeconds: Invalid '
        "value: 60: may not specify a duration less than 10 minutes"
    )
    missing = await _token(secure, "ghost")
    assert (missing["code"], missing["message"]) == (404, 'serviceaccounts "ghost" not found')


async def test_audiences_expiry_and_binding(secure: Cluster, clock: FakeClock) -> None:
    vault = (await _token(secure, audiences=["vault"]))["status"]["token"]
    async with _client(secure, token=vault) as client:
        assert (await client.get("/api")).status_code == 401  # not for the API server
    async with http(secure) as admin:
        review = await admin.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": vault, "audiences": ["vault", "other"]}},
        )  # fmt: skip
        status = review.json()["status"]
        assert status["authenticated"] is True
        assert status["audiences"] == ["vault"]
        assert status["user"]["username"] == "system:serviceaccount:default:robot"
    token = (await _token(secure))["status"]["token"]
    async with _client(secure, token=token) as client:
        assert (await client.get("/api")).status_code == 200
        clock.now += dt.timedelta(seconds=3600 + 59)  # within kube's minute of leeway
        assert (await client.get("/api")).status_code == 200
        clock.now += dt.timedelta(seconds=2)
        assert (await client.get("/api")).status_code == 401


async def test_tokens_die_with_their_service_account_and_pod(secure: Cluster) -> None:
    token = (await _token(secure))["status"]["token"]
    await secure.client.delete("v1", "ServiceAccount", "robot", "default")
    await secure.client.create(
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "robot", "namespace": "default"}}
    )  # fmt: skip
    async with _client(secure, token=token) as client:
        assert (await client.get("/api")).status_code == 401  # same name, new uid
    pod = await secure.client.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
         "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "i"}]}}
    )  # fmt: skip
    mounted = await secure.service_account_token(
        "default", "robot", expiration_seconds=3607, pod=("p", pod["metadata"]["uid"])
    )
    async with _client(secure, token=mounted.token) as client:
        me = await _whoami(client)
        assert me["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
        await secure.client.delete("v1", "Pod", "p", "default")
        assert (await client.get("/api")).status_code == 401


async def test_impersonation_needs_the_impersonate_verb(secure: Cluster) -> None:
    assert secure.certificate is not None
    jane = issue_client_certificate(secure.certificate.ca, "jane", ["devs"])
    async with _client(secure, cert=jane) as client:
        denied = await client.get("/api", headers={"Impersonate-User": "bob"})
        assert status_of(denied) == (
            403,
            "Forbidden",
            'users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API '
            'group "" at the cluster scope',
        )
    async with http(secure) as admin:
        as_robot = {"Impersonate-User": "system:serviceaccount:default:robot"}
        me = await _whoami_with(admin, as_robot)
        assert me["username"] == "system:serviceaccount:default:robot"
        assert "system:serviceaccounts:default" in me["groups"]
        assert (await admin.get(PODS, headers=as_robot)).status_code == 403
        grouped = {"Impersonate-User": "ann", "Impersonate-Group": "system:masters"}
        assert (await admin.get(PODS, headers=grouped)).status_code == 200


async def _whoami_with(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        headers=headers,
    )
    user: dict[str, Any] = response.json()["status"]["userInfo"]
    return user


async def test_access_reviews(secure: Cluster) -> None:
    base = "/apis/authorization.k8s.io/v1"
    async with http(secure) as admin:
        mine = await admin.post(
            f"{base}/selfsubjectaccessreviews",
            json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}},
        )  # fmt: skip
        assert mine.status_code == 201
        assert mine.json()["status"] == {"allowed": True}
        theirs = await admin.post(
            f"{base}/subjectaccessreviews",
            json={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": "system:serviceaccount:default:robot",
                           "groups": ["system:authenticated"],
                           "resourceAttributes": {"verb": "create", "group": "authorization.k8s.io",
                                                  "resource": "selfsubjectaccessreviews"}}},
        )  # fmt: skip
        assert theirs.json()["status"] == {
            "allowed": True,
            "reason": 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole '
            '"system:basic-user" to Group "system:authenticated"',
        }
        neither = await admin.post(
            f"{base}/selfsubjectaccessreviews",
            json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {}},
        )  # fmt: skip
        assert status_of(neither)[:2] == (422, "Invalid")
        assert "exactly one of nonResourceAttributes or resourceAttributes" in status_of(neither)[2]
        local = await admin.post(
            f"{base}/namespaces/default/localsubjectaccessreviews",
            json={"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                  "spec": {"user": "x", "resourceAttributes": {"namespace": "other", "verb": "get",
                                                               "resource": "pods"}}},
        )  # fmt: skip
        assert status_of(local)[:2] == (422, "Invalid")
        listing = await admin.get(f"{base}/selfsubjectaccessreviews")
        assert status_of(listing)[:2] == (405, "MethodNotAllowed")


async def test_plain_http_clusters_act_as_the_administrator_but_check_tokens() -> None:
    async with start_cluster(authorization="RBAC", controllers=False) as cluster:
        await cluster.client.create(
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "robot", "namespace": "default"}}
        )  # fmt: skip
        async with http(cluster) as client:
            assert (await _whoami(client))["username"] == "system:admin"
            token = (await cluster.service_account_token("default", "robot")).token
            robot = {"Authorization": f"Bearer {token}"}
            assert status_of(await client.get(PODS, headers=robot))[0] == 403
            bad = {"Authorization": "Bearer nope"}
            assert status_of(await client.get(PODS, headers=bad))[0] == 401
        with pytest.raises(ValueError, match="kubeconfig_for_token needs a TLS cluster"):
            cluster.kubeconfig_for_token(token)


async def test_a_token_without_tls_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="token= needs tls=True: kubectl and client-go never"):
        async with start_cluster(token="s3cret"):
            pass
