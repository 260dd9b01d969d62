"""deploy/ renders with kustomize and the API server accepts it; replicas share one webhook cert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kaito.api import workspace_crd
from kaito.cli._manager import _shared_certificate
from kaito.cluster import cluster_in_thread, start_cluster
from kaito.engine import load_client

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.kubectl
def test_deploy_renders_and_applies(tmp_path: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy")], capture_output=True, text=True, check=True
    ).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)
    assert kinds == sorted([
        "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
        "ClusterRoleBinding", "Role", "RoleBinding", "Role", "RoleBinding", "Deployment",
        "Service", "Service",
    ])  # fmt: skip
    (tmp_path / "all.yaml").write_text(rendered)
    with cluster_in_thread() as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(tmp_path / "kubeconfig"), "--cache-dir",
             str(tmp_path / "cache"), "apply", "--server-side", "-f", str(tmp_path / "all.yaml")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "deployment.apps/kaito-workspace serverside-applied" in proc.stdout


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
