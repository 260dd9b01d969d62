"""The webhook certificate keeper against the in-process API server, on a fake clock: generated
into the Secret, adopted by a restarted or second replica, renewed before expiry (the CA too,
with the old CA trusted until it expires), one winner when replicas renew at once, caBundles
kept, the served certificate switched without a restart, never a key in a log line."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from prometheus_client import CollectorRegistry

from kaito.cluster import Cluster, start_cluster
from kaito.engine import FakeClock, KubeClient, load_client
from kaito.tls import certificate_info, split_pem_bundle
from kaito.webhooks import (
    WEBHOOK_CONFIGURATIONS,
    CertificatePolicy,
    WebhookCertificates,
    webhook_configurations,
)

NAMESPACE = "kaito-workspace"
SERVICE = "kaito-workspace-webhook"
DAY = 24 * 3600.0
POLICY = CertificatePolicy(
    ca_validity=dt.timedelta(days=30), validity=dt.timedelta(days=1), recheck=600.0
)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with start_cluster() as running:
        await running.create_namespace(NAMESPACE)
        for config in webhook_configurations(ca_pem=b"", service=(NAMESPACE, SERVICE, 443)):
            await running.client.create(config)  # as deploy/ ships them: no caBundle yet
        await running.client.create(
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "workspace-webhook-cert", "namespace": NAMESPACE}}
        )  # fmt: skip
        yield running


@pytest.fixture
async def client(cluster: Cluster, tmp_path: Path) -> AsyncIterator[KubeClient]:
    running = await load_client(str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        yield running
    finally:
        await running.close()


def keeper(client: KubeClient, clock: FakeClock, **kwargs: Any) -> WebhookCertificates:
    return WebhookCertificates(
        client, namespace=NAMESPACE, service=SERVICE, policy=POLICY, clock=clock, **kwargs
    )


async def stored(cluster: Cluster) -> dict[str, bytes]:
    secret = await cluster.client.get("v1", "Secret", "workspace-webhook-cert", NAMESPACE)
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


async def bundles(cluster: Cluster) -> list[bytes]:
    out = []
    for kind, name in WEBHOOK_CONFIGURATIONS:
        config = await cluster.client.get("admissionregistration.k8s.io/v1", kind, name)
        out += [base64.b64decode(h["clientConfig"]["caBundle"]) for h in config["webhooks"]]
    return out


def serial(pem: bytes) -> int:
    return certificate_info(pem).serial


@pytest.mark.anyio
async def test_generated_into_the_secret_with_the_ca_bundle_patched(
    cluster: Cluster, client: KubeClient
) -> None:
    clock = FakeClock(time.time())
    with structlog.testing.capture_logs() as logs:
        serving = await keeper(client, clock).sync()
    data = await stored(cluster)
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert data["tls.crt"] == serving.cert_pem
    assert data["ca.crt"] == serving.ca.cert_pem
    info = certificate_info(serving.cert_pem)
    assert set(info.hosts) >= {
        f"{SERVICE}.{NAMESPACE}.svc",
        f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
    }
    assert info.lifetime == dt.timedelta(days=1, minutes=5)
    assert await bundles(cluster) == [data["ca.crt"], data["ca.crt"]]
    events = [e["event"] for e in logs]
    assert "webhook_certificate_stored" in events
    assert events.count("webhook_ca_bundle_patched") == 2
    for secret in (data["ca.key"], data["tls.key"]):  # no key material in any log line
        assert not any(secret.decode() in str(e) or base64.b64encode(secret).decode() in str(e)
                       for e in logs)  # fmt: skip


@pytest.mark.anyio
async def test_a_restarted_or_second_replica_adopts_it_and_writes_nothing(
    cluster: Cluster, client: KubeClient
) -> None:
    clock = FakeClock(time.time())
    first = await keeper(client, clock).sync()
    before = await cluster.client.get("v1", "Secret", "workspace-webhook-cert", NAMESPACE)
    with cluster.audit.record(lambda e: e.is_write) as writes:
        second = await keeper(client, clock).sync()
        clock.advance(3600)
        restarted = await keeper(client, clock).sync()
    assert first == second == restarted
    assert writes == []  # neither the Secret nor a configuration was written again
    after = await cluster.client.get("v1", "Secret", "workspace-webhook-cert", NAMESPACE)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.anyio
async def test_renewed_before_expiry_and_every_replica_switches(
    cluster: Cluster, client: KubeClient
) -> None:
    clock = FakeClock(time.time())
    one, two = keeper(client, clock), keeper(client, clock)
    async with anyio.create_task_group() as tg:
        await tg.start(one.run)
        await tg.start(two.run)
        old = one.certificate
        assert old is not None and two.certificate == old
        await anyio.wait_all_tasks_blocked()
        clock.advance(16 * 3600 - 60)  # a minute before two thirds of its day: nothing yet
        await anyio.wait_all_tasks_blocked()
        assert one.certificate == old
        clock.advance(120)  # renewal due
        with anyio.fail_after(10):
            while not (one.certificate != old and two.certificate == one.certificate):
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    new = one.certificate
    assert new is not None
    assert new.ca == old.ca  # the serving certificate is renewed, the CA kept
    assert serial(new.cert_pem) != serial(old.cert_pem)
    assert certificate_info(old.cert_pem).not_after > dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    assert (await stored(cluster))["tls.crt"] == new.cert_pem


@pytest.mark.anyio
async def test_replicas_renewing_at_once_store_one_certificate(
    cluster: Cluster, client: KubeClient
) -> None:
    clock = FakeClock(time.time())
    registries = [CollectorRegistry() for _ in range(3)]
    keepers = [keeper(client, clock, registry=r) for r in registries]
    with cluster.audit.record(lambda e: e.is_write and e.resource == "secrets") as writes:
        async with anyio.create_task_group() as tg:
            for each in keepers:
                tg.start_soon(each.sync)
    assert sorted(w.code for w in writes) == [200, 409, 409]  # one wrote; two lost and adopted
    assert len({k.certificate for k in keepers}) == 1
    rotations = sum(
        r.get_sample_value("kaito_webhook_certificate_rotations_total", {"reason": "ca_missing"})
        or 0
        for r in registries
    )
    assert rotations == 1


@pytest.mark.anyio
async def test_the_ca_is_renewed_with_the_old_one_trusted_until_it_expires(
    cluster: Cluster, client: KubeClient
) -> None:
    clock = FakeClock(time.time())
    keeps = keeper(client, clock)
    first = await keeps.sync()
    clock.advance(20 * DAY + 60)  # past two thirds of the CA's 30 days
    second = await keeps.sync()
    assert second.ca != first.ca
    bundle = split_pem_bundle((await stored(cluster))["ca.crt"])
    assert bundle == [second.ca.cert_pem, first.ca.cert_pem]  # new first, old still trusted
    assert all(b"".join(bundle) == b for b in await bundles(cluster))
    clock.advance(10 * DAY)  # the old CA has expired: it leaves the bundle
    third = await keeps.sync()
    assert split_pem_bundle((await stored(cluster))["ca.crt"]) == [third.ca.cert_pem]
    assert await bundles(cluster) == [third.ca.cert_pem, third.ca.cert_pem]


@pytest.mark.anyio
async def test_a_damaged_or_foreign_secret_is_replaced(
    cluster: Cluster, client: KubeClient
) -> None:
    clock = FakeClock(time.time())
    await cluster.client.patch(
        "v1", "Secret", "workspace-webhook-cert",
        {"data": {"ca.crt": base64.b64encode(b"junk").decode(), "tls.key": "not base64!"}},
        namespace=NAMESPACE,
    )  # fmt: skip
    serving = await keeper(client, clock).sync()
    assert (await stored(cluster))["tls.crt"] == serving.cert_pem
    other = keeper(client, clock, extra_hosts=["webhook.example.com"])  # hosts changed
    renamed = await other.sync()
    assert renamed.ca == serving.ca  # same CA, a new certificate for the new names
    assert "webhook.example.com" in certificate_info(renamed.cert_pem).hosts


@pytest.mark.anyio
async def test_missing_configurations_are_created_for_a_manager_run_without_deploy(
    cluster: Cluster, client: KubeClient
) -> None:
    for kind, name in WEBHOOK_CONFIGURATIONS:
        await cluster.client.delete("admissionregistration.k8s.io/v1", kind, name)
    await keeper(client, FakeClock(time.time())).sync()
    data = await stored(cluster)
    assert await bundles(cluster) == [data["ca.crt"], data["ca.crt"]]


@pytest.mark.anyio
async def test_the_server_context_switches_certificate_without_a_restart(
    cluster: Cluster, client: KubeClient
) -> None:
    from aiohttp import web

    # A TLS client checks validity on the real clock: keep the fake one behind it, so that
    # certificates made on it are already valid in real time.
    clock = FakeClock(time.time() - 20 * 3600)
    keeps = keeper(client, clock, extra_hosts=["127.0.0.1"])
    first = await keeps.sync()
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=keeps.context)
    await site.start()
    port = runner.addresses[0][1]

    async def served_serial() -> int:
        context = ssl.create_default_context(cadata=keeps.bundle.decode())
        stream = await anyio.connect_tcp("127.0.0.1", port, ssl_context=context,
                                         tls_standard_compatible=False)  # fmt: skip
        async with stream:
            der = stream.extra(anyio.streams.tls.TLSAttribute.peer_certificate_binary)
        pem = ssl.DER_cert_to_PEM_cert(der).encode()
        return serial(pem)

    try:
        assert await served_serial() == serial(first.cert_pem)
        clock.advance(17 * 3600)
        second = await keeps.sync()
        assert await served_serial() == serial(second.cert_pem) != serial(first.cert_pem)
    finally:
        await runner.cleanup()
