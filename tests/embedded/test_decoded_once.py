"""Through a real reconcile: every pass reads the Workspace through the decoder, and each stored
version of it is decoded once however many passes see it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from kaito.api import workspace_crd
from kaito.cluster import start_cluster
from kaito.controllers import DecodedWorkspace, WorkspaceDecoder, add_workspace_controller
from kaito.engine import Manager, load_client
from kaito.operator import controller_settings
from kaito.options import ManagerOptions
from kaito_provisioners.fake import FakeProvisioner
from tests.embedded.conftest import conditions, example

pytestmark = pytest.mark.anyio


class RecordingDecoder(WorkspaceDecoder):
    """Remembers the resourceVersion of every Workspace a pass asked for (polled by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: list[str] = []

    def decode(self, raw: Mapping[str, Any]) -> DecodedWorkspace:
        self.versions.append(raw["metadata"]["resourceVersion"])
        return super().decode(raw)


async def test_each_stored_version_is_decoded_once(tmp_path: Path) -> None:
    decoder = RecordingDecoder()
    async with start_cluster(crds=[workspace_crd()]) as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        try:
            manager = Manager(client, name="kaito-test")
            add_workspace_controller(
                manager,
                client,
                FakeProvisioner(client),
                controller_settings(ManagerOptions()),
                decoder=decoder,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await cluster.client.create(
                    example("inference/kaito_workspace_phi_3.yaml"), namespace="default"
                )
                with anyio.fail_after(30):
                    while True:
                        ws = await cluster.client.get(
                            "kaito.sh/v1beta1", "Workspace", "workspace-phi-3-mini", "default"
                        )
                        if conditions(ws).get("WorkspaceReady", {}).get("status") == "True":
                            break
                        await anyio.sleep(0.1)
                # An owned object changes in a way that is no news to the Workspace: the pass it
                # causes reads the same stored version, and does not decode it again.
                passes = len(decoder.versions)
                await cluster.client.patch(
                    "v1", "ConfigMap", "workspace-phi-3-mini-inference-params",
                    {"metadata": {"annotations": {"example.com/touched": "yes"}}},
                    namespace="default",
                )  # fmt: skip
                with anyio.fail_after(30):
                    while len(decoder.versions) == passes:
                        await anyio.sleep(0.05)
                manager.stop()
        finally:
            await client.close()
    distinct = set(decoder.versions)
    assert decoder.misses == len(distinct)
    assert decoder.hits == len(decoder.versions) - len(distinct) > 0
