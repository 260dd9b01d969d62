"""HTTPS with a generated CA and bearer-token authentication, through unchanged clients."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from kubernetes_asyncio import client, config

from kaito.cluster import start_cluster

pytestmark = pytest.mark.anyio


@pytest.mark.kubectl
async def test_tls_and_token_with_kubectl_and_kubernetes_asyncio(tmp_path: Path) -> None:
    async with start_cluster(tls=True, token="s3cret") as cluster:
        assert cluster.url.startswith("https://127.0.0.1:")
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        assert oct(kubeconfig.stat().st_mode)[-3:] == "600"
        result = await anyio_run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "c"),
                "get",
                "namespaces",
                "-o",
                "name",
            ]
        )
        assert "namespace/default" in result.stdout.split()
        configuration = client.Configuration()
        await config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        async with client.ApiClient(configuration) as api:
            namespaces = await client.CoreV1Api(api).list_namespace()
            assert "kube-system" in {n.metadata.name for n in namespaces.items}
        async with httpx.AsyncClient(
            base_url=cluster.url, verify=cluster.client_ssl_context()
        ) as anonymous:
            denied = await anonymous.get("/api/v1/namespaces")
            assert denied.status_code == 401
            assert denied.json()["reason"] == "Unauthorized"
            assert (await anonymous.get("/version")).status_code == 200
            wrong = await anonymous.get(
                "/api/v1/namespaces", headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=cluster.url) as untrusting:
                await untrusting.get("/version")


async def anyio_run(command: list[str]) -> subprocess.CompletedProcess[str]:
    import anyio

    done = await anyio.run_process(command, check=True)
    return subprocess.CompletedProcess(
        command, done.returncode, done.stdout.decode(), done.stderr.decode()
    )
