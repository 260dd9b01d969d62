"""The operator as ``kaito manager`` and ``kaito up`` both build it: the Workspace controller on the
leader, the webhook server on every replica (a standby answers admission reviews too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from kaito.api import workspace_crd
from kaito.cluster import Cluster, start_cluster
from kaito.controllers import validation_context
from kaito.engine import KubeClient, load_client
from kaito.operator import WEBHOOK_RUNNABLE, WebhookServing, build_operator
from kaito.options import ManagerOptions
from kaito.tls import ServingCertificate, generate_serving_certificate
from kaito.webhooks import VALIDATE_PATH
from kaito_provisioners.fake import FakeProvisioner
from tests.api.test_invalid_specs import inference_ws

pytestmark = pytest.mark.anyio
OPTIONS = ManagerOptions(
    leader_elect=True,
    metrics_address=None,
    probe_address=None,
    allow_local_urls=True,
    feature_gates={**ManagerOptions().feature_gates, "enableMIG": True},
)


@asynccontextmanager
async def client_of(cluster: Cluster, path: Path) -> AsyncIterator[KubeClient]:
    cluster.write_kubeconfig(path)
    client = await load_client(str(path))
    try:
        yield client
    finally:
        await client.close()


def review(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": "CREATE", "namespace": "default", "object": obj},
    }


def test_one_builder_wires_controller_and_webhooks_with_one_context() -> None:
    certificate = generate_serving_certificate(["127.0.0.1"])
    operator = build_operator(
        OPTIONS,
        None,
        None,
        webhooks=WebhookServing(certificate, port=0),  # type: ignore[arg-type]
    )
    assert [c.name for c in operator.manager.controllers] == ["workspace"]
    server, needs_lease = operator.manager.runnables[WEBHOOK_RUNNABLE]
    assert server is operator.webhooks and needs_lease is False
    # The webhook validates with exactly the controller's settings (no field left behind).
    assert operator.webhooks.base == validation_context(operator.settings)
    assert operator.webhooks.base.allow_local_urls and operator.webhooks.base.enable_mig
    bare = build_operator(OPTIONS, None, None)  # type: ignore[arg-type]
    assert bare.webhooks is None and bare.manager.runnables == {}


async def _answer(port: int, certificate: ServingCertificate, body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(verify=certificate.client_context(), timeout=10) as http:
        response = await http.post(f"https://127.0.0.1:{port}{VALIDATE_PATH}", json=body)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()["response"]
    return answer


async def test_a_standby_replica_serves_admission(tmp_path: Path) -> None:
    certificate = generate_serving_certificate(["127.0.0.1"])
    serving = WebhookServing(certificate, host="127.0.0.1", port=0)
    async with start_cluster(crds=[workspace_crd()]) as cluster:
        await cluster.create_namespace(OPTIONS.leader_election_namespace)
        async with (
            client_of(cluster, tmp_path / "a") as client_a,
            client_of(cluster, tmp_path / "b") as client_b,
            anyio.create_task_group() as tg,
        ):
            leader = build_operator(OPTIONS, client_a, FakeProvisioner(client_a), webhooks=serving)
            standby = build_operator(OPTIONS, client_b, FakeProvisioner(client_b), webhooks=serving)
            tg.start_soon(leader.manager.run)
            with anyio.fail_after(20):
                await leader.manager.leading.wait()
            tg.start_soon(standby.manager.run)
            with anyio.fail_after(20):
                await standby.manager.started.wait()
            assert standby.webhooks is not None and standby.webhooks.bound_port
            bad = inference_ws(resource={"instanceType": "m5.large"})
            answer = await _answer(standby.webhooks.bound_port, certificate, review(bad))
            assert answer["allowed"] is False
            assert [c["field"] for c in answer["status"]["details"]["causes"]] == [
                "resource.instanceType"
            ]
            assert (
                await _answer(standby.webhooks.bound_port, certificate, review(inference_ws()))
            )["allowed"]
            assert not standby.manager.leading.is_set()  # it answered without the lease
            standby.manager.stop()
            leader.manager.stop()
