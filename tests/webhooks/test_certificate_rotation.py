"""Certificate rotation seen through kubectl: deploy/base applied, the manager's certificate keeper
and webhook server running on a fake clock behind the real one. An expired certificate is what
the API server refuses (so the check is real); once the keeper's clock passes the expiry it
renews and requests pass again; a renewal before expiry keeps every request passing, and the
webhook still rejects a bad Workspace with the manager's message."""

from __future__ import annotations

import copy
import datetime as dt
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from kaito.api import ValidationContext
from kaito.cluster import StatusError, ThreadedCluster, cluster_in_thread
from kaito.engine import FakeClock, KubeClient, load_client
from kaito.tls import certificate_info
from kaito.webhooks import CertificatePolicy, WebhookCertificates, WebhookServer, validate_review
from tests.deploy.conftest import DEPLOY, REPO, Kubectl

pytestmark = pytest.mark.kubectl

NAMESPACE = "kaito-workspace"
SERVICE = "kaito-workspace-webhook"
DAY = 24 * 3600.0
EXAMPLE = REPO / "examples" / "inference" / "kaito_workspace_phi_3_with_adapters.yaml"


def _workspace(name: str, preset: str = "phi-3-mini-128k-instruct") -> dict[str, Any]:
    ws = yaml.safe_load(EXAMPLE.read_text())
    ws["metadata"] = {"name": name, "namespace": "default"}
    ws["inference"]["preset"]["name"] = preset
    return dict(ws)


class Manager:
    """The manager's webhook half, on the cluster's event loop: keeper and server."""

    def __init__(self, cluster: ThreadedCluster, kubeconfig: Path, clock: FakeClock) -> None:
        self.cluster = cluster
        self.clock = clock
        self.client: KubeClient = cluster.call(load_client, str(kubeconfig))
        self.keeper = WebhookCertificates(
            self.client,
            namespace=NAMESPACE,
            service=SERVICE,
            policy=CertificatePolicy(
                ca_validity=dt.timedelta(days=30), validity=dt.timedelta(days=1)
            ),
            clock=clock,
        )
        self.tasks = []
        future, _ = cluster.portal.start_task(self.keeper.run)
        self.tasks.append(future)
        assert self.keeper.certificate is not None
        server = WebhookServer(
            self.client, ValidationContext(), self.keeper.certificate, host="127.0.0.1", port=0,
            ssl_context=self.keeper.context,
        )  # fmt: skip
        future, port = cluster.portal.start_task(server.run)
        self.tasks.append(future)
        self.port = port
        cluster.cluster.register_service_endpoint(
            NAMESPACE, SERVICE, f"https://127.0.0.1:{port}", port=443
        )

    def serial(self) -> int:
        certificate = self.keeper.certificate
        assert certificate is not None
        return certificate_info(certificate.cert_pem).serial

    def advance(self, seconds: float) -> None:
        self.cluster.call(self._advance, seconds)

    async def _advance(self, seconds: float) -> None:
        await anyio.wait_all_tasks_blocked()
        self.clock.advance(seconds)

    def wait_for_rotation(self, old: int) -> int:
        deadline = time.monotonic() + 30
        while self.serial() == old:
            assert time.monotonic() < deadline, "the keeper did not renew"
            time.sleep(0.02)
        return self.serial()

    def served_serial(self) -> int:
        """The serial of the certificate a new TLS handshake gets (as the API server sees it)."""
        context = ssl.create_default_context(cadata=self.keeper.bundle.decode())
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # look at it even when it has expired
        der = ssl.get_server_certificate(("127.0.0.1", self.port))
        return certificate_info(der.encode()).serial

    def close(self) -> None:
        for future in self.tasks:
            future.cancel()
        self.cluster.call(self.client.close)


@pytest.fixture
def cluster() -> Iterator[ThreadedCluster]:
    with cluster_in_thread() as running:
        yield running


def test_kubectl_keeps_passing_through_the_webhook_across_expiry_and_renewal(
    cluster: ThreadedCluster, tmp_path: Path
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    kubectl = Kubectl(kubeconfig, tmp_path / "cache")
    kubectl("apply", "-k", str(DEPLOY / "base"))
    # The keeper's clock starts three days behind the real one: its first certificate (valid for
    # a day on its clock) has already expired for the API server, which checks the real time.
    clock = FakeClock(time.time() - 3 * DAY)
    manager = Manager(cluster, kubeconfig, clock)

    def apply(ws: dict[str, Any], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubectl("apply", "-f", "-", stdin=yaml.safe_dump(ws), check=check)

    try:
        expired = apply(_workspace("before-renewal"), check=False)
        assert expired.returncode == 1
        assert 'failed calling webhook "defaulting.workspace.kaito.sh"' in expired.stderr
        assert "certificate has expired" in expired.stderr

        first = manager.serial()
        manager.advance(2 * DAY + 3600)  # the keeper's clock passes the expiry: it renews
        second = manager.wait_for_rotation(first)
        assert manager.served_serial() == second
        apply(_workspace("after-expiry"))
        defaulted = kubectl("get", "workspace", "after-expiry", "-o",
                            "jsonpath={.resource.count}").stdout  # fmt: skip
        assert defaulted == "1"  # the mutating webhook ran

        manager.advance(16 * 3600 + 60)  # two thirds of the new certificate's day: renewed
        third = manager.wait_for_rotation(second)  # before it expires
        assert manager.served_serial() == third
        apply(_workspace("after-renewal"))

        bad = _workspace("bad", preset="phi-9")  # the manager's rule, not the schema's
        denied = apply(bad, check=False)
        review = {"request": {"uid": "u", "operation": "CREATE", "namespace": "default",
                              "object": copy.deepcopy(bad)}}  # fmt: skip
        status = validate_review(review, ValidationContext())["response"]["status"]
        (cause,) = status["details"]["causes"]
        assert denied.returncode == 1
        # kubectl prints a 422's causes; the message is the manager's, word for word.
        assert denied.stderr.startswith('The Workspace "bad" is invalid: ')
        assert cause["message"] in denied.stderr
        assert "unsupported inference preset name; use a HuggingFace id" in cause["message"]
        with pytest.raises(StatusError) as raw:  # the same request, the API server's Status
            cluster.call(cluster.cluster.client.create, bad)
        assert raw.value.message == (
            'admission webhook "validation.workspace.kaito.sh" denied the request: '
            + status["message"]
        )
        names = kubectl("get", "workspaces", "-o", "name").stdout.split()
        assert names == ["workspace.kaito.sh/after-expiry", "workspace.kaito.sh/after-renewal"]
    finally:
        manager.close()
