"""Tuning progress from kaito_runtime's progress server reaches the Workspace's JobStarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from kaito.api import workspace_crd
from kaito.cluster import PodStatusWriter, start_cluster
from kaito.controllers import (
    add_workspace_controller,
    describe_progress,
    http_progress_reader,
)
from kaito.engine import Manager, load_client
from kaito.operator import controller_settings
from kaito.options import ManagerOptions
from kaito_provisioners.fake import FakeProvisioner
from kaito_runtime.tuning._progress import ProgressServer, ProgressTracker
from tests.embedded.conftest import conditions, example

pytestmark = pytest.mark.anyio


class RunningKubelet:
    """Tuning pods run and stay running (training in progress)."""

    async def run_pod(self, pod: dict[str, Any], status: PodStatusWriter) -> None:
        await status.running(ready=True)
        await anyio.sleep_forever()


def test_progress_lines() -> None:
    doc = {"phase": "training", "step": 40, "max_steps": 100, "epoch": 0.4, "loss": 1.23456,
           "tokens_per_second": 512.3, "eta_seconds": 125}  # fmt: skip
    assert describe_progress(doc) == "step 40/100, epoch 0.40, loss 1.2346, 512 tokens/s, ETA 2m"
    assert describe_progress({"phase": "loading"}) == "loading"


async def test_the_runtime_progress_server_is_read() -> None:
    tracker = ProgressTracker(None)
    server = ProgressServer(tracker, host="127.0.0.1", port=0)
    try:
        tracker.update(phase="training", step=3, max_steps=10, epoch=0.3, loss=2.5)
        line = await http_progress_reader(port=server.port)("127.0.0.1")
        assert line == "step 3/10, epoch 0.30, loss 2.5000"
        assert await http_progress_reader(port=1)("127.0.0.1") is None  # nothing listens
    finally:
        server.close()
        tracker.close()


async def test_progress_shows_in_the_workspace_status(tmp_path: Path) -> None:
    tracker = ProgressTracker(None)
    server = ProgressServer(tracker, host="127.0.0.1", port=0)
    tracker.update(phase="training", step=7, max_steps=20, epoch=1.0, loss=0.75)
    reader = http_progress_reader(port=server.port)

    async def to_loopback(pod_ip: str) -> str | None:
        return await reader("127.0.0.1")  # the simulated pod's IP is not routable here

    try:
        async with start_cluster(crds=[workspace_crd()], kubelet=RunningKubelet()) as cluster:
            cluster.write_kubeconfig(tmp_path / "kubeconfig")
            client = await load_client(str(tmp_path / "kubeconfig"))
            manager = Manager(client, name="progress-test")
            add_workspace_controller(manager, client, FakeProvisioner(client),
                                     controller_settings(ManagerOptions()),
                                     progress_reader=to_loopback)  # fmt: skip
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await cluster.client.create(
                    example("fine-tuning/kaito_workspace_tuning_phi_3.yaml"), namespace="default"
                )
                with anyio.fail_after(20):
                    while True:
                        ws = await cluster.client.get(
                            "kaito.sh/v1beta1", "Workspace", "workspace-tuning-phi-3", "default"
                        )
                        started = conditions(ws).get("JobStarted", {})
                        if "step 7/20" in started.get("message", ""):
                            break
                        await anyio.sleep(0.1)
                assert started["status"] == "True"
                assert ws["status"]["state"] == "Running"
                assert "loss 0.7500" in conditions(ws)["WorkspaceSucceeded"]["message"]
                tg.cancel_scope.cancel()
            await client.close()
    finally:
        server.close()
        tracker.close()
