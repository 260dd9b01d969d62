"""Replicas share one webhook certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito.api import workspace_crd
from kaito.cli.manager import _shared_certificate
from kaito.cluster import start_cluster
from kaito.engine import load_client

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.anyio
async def test_replicas_share_the_webhook_certificate(tmp_path: Path) -> None:
    async with start_cluster(crds=[workspace_crd()]) as cluster:
        await cluster.create_namespace("kaito-workspace")
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        try:
            first = await _shared_certificate(client, "kaito-workspace", "kaito-workspace/hook")
            second = await _shared_certificate(client, "kaito-workspace", "kaito-workspace/hook")
        finally:
            await client.close()
        assert first.cert_pem == second.cert_pem
        assert first.ca.cert_pem == second.ca.cert_pem
        secret = await cluster.client.get(
            "v1", "Secret", "workspace-webhook-cert", "kaito-workspace"
        )
        assert secret["type"] == "kubernetes.io/tls"
