"""An ``inference.template`` Workspace on the in-process cluster with the local kubelet: the user's
own container runs as a real process, its own readiness probe makes the Workspace ready, and a
template whose image cannot run says why it is not ready."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kaito.cluster import LocalKubelet
from kaito.embedded import Embedded, embedded_kaito
from tests.embedded.conftest import conditions, wait_condition

pytestmark = pytest.mark.anyio

WS = "workspace-mine"


@pytest.fixture
async def local_kaito(tmp_path: Path) -> AsyncIterator[Embedded]:
    """KAITO whose Pods run as processes of this machine (no sandbox: the fastest start)."""
    kubelet = LocalKubelet(root=tmp_path / "kubelet", sandbox="host")
    async with (
        kubelet,
        embedded_kaito(kubelet=kubelet, kubeconfig_out=tmp_path / "kubeconfig") as running,
    ):
        yield running


def template_workspace(image: str) -> dict[str, Any]:
    """A Workspace serving the user's own HTTP server, bound to its Pod IP, with its own probe."""
    server = {
        "name": "server",
        "image": image,
        "command": ["python", "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": WS},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"app": "mine"}},
        },
        "inference": {"template": {"metadata": {"labels": {"app": "mine"}},
                                   "spec": {"containers": [server]}}},
    }  # fmt: skip


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as reply:  # a loopback Pod IP
        return int(reply.status)


async def test_the_users_container_serves_and_makes_the_workspace_ready(
    local_kaito: Embedded,
) -> None:
    client = local_kaito.cluster.client
    await client.create(template_workspace("kaito-runtime:0.1.0"), namespace="default")
    ws = await wait_condition(local_kaito, WS, "WorkspaceReady", within=60.0)
    assert conditions(ws)["InferenceReady"]["status"] == "True"
    (node,) = ws["status"]["workerNodes"]

    sts = await client.get("apps/v1", "StatefulSet", WS, "default")
    spec = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["server"]  # the user's pod spec, as given
    assert sts["spec"]["template"]["metadata"]["labels"] == {
        "app": "mine",
        "kaito.sh/workspace": WS,
    }
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in (
        spec["tolerations"]
    )
    (pod,) = await client.list("v1", "Pod", "default", label_selector=f"kaito.sh/workspace={WS}")
    assert pod["spec"]["nodeName"] == node
    # The user's process answers on its Pod IP (a loopback address of its own).
    ip = pod["status"]["podIP"]
    assert await anyio.to_thread.run_sync(_get, f"http://{ip}:8080/") == 200
    svc = await client.get("v1", "Service", WS, "default")
    assert svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{WS}-0"


async def test_a_template_whose_image_cannot_run_says_why(local_kaito: Embedded) -> None:
    await local_kaito.cluster.client.create(
        template_workspace("registry.example/server:1"), namespace="default"
    )
    ws = await wait_condition(local_kaito, WS, "InferenceReady", "False",
                              reason="ImagePullError", within=60.0)  # fmt: skip
    assert "registry.example/server:1" in conditions(ws)["InferenceReady"]["message"]
    assert conditions(ws)["WorkspaceReady"]["status"] == "False"
