"""A Workspace's revision history against the in-process API server: numbered in order, at most
ten kept (oldest deleted first), an earlier spec gets its number back, and a pass with a stale
cache reads back the revision a racing pass created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaito.api import structure, workspace_crd
from kaito.api.v1beta1 import Workspace
from kaito.cluster import start_cluster
from kaito.controllers._resources import CONTROLLER_REVISIONS, WORKSPACES
from kaito.controllers._revisions import MAX_REVISION_HISTORY, sync_revision
from kaito.engine import KubeClient, ObjectKey, load_client
from tests.embedded.conftest import example

pytestmark = pytest.mark.anyio


async def _history(client: KubeClient) -> list[dict[str, Any]]:
    return list((await client.list(CONTROLLER_REVISIONS, namespace="default")).items)


async def _with_label(client: KubeClient, value: str) -> Workspace:
    key = ObjectKey("default", "rev")
    patch = {"resource": {"labelSelector": {"matchLabels": {"apps": value}}}}
    return structure(await client.patch(WORKSPACES, key, patch), Workspace)


async def test_revisions_are_numbered_trimmed_to_ten_and_reused(tmp_path: Path) -> None:
    doc = example("inference/kaito_workspace_phi_3.yaml")
    doc["metadata"] = {"name": "rev", "namespace": "default"}
    async with start_cluster(crds=[workspace_crd()]) as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        try:
            await cluster.client.create(doc, namespace="default")
            numbers = []
            for i in range(MAX_REVISION_HISTORY + 2):
                ws = await _with_label(client, f"v{i}")
                numbers.append(await sync_revision(client, ws, await _history(client)))
            assert numbers == [str(n) for n in range(1, MAX_REVISION_HISTORY + 3)]
            kept = sorted(int(r["revision"]) for r in await _history(client))
            assert kept == list(range(3, MAX_REVISION_HISTORY + 3))  # 1 and 2 deleted

            # Back to an earlier spec that is still kept: its number, no new revision.
            ws = await _with_label(client, "v5")
            assert await sync_revision(client, ws, await _history(client)) == "6"
            assert len(await _history(client)) == MAX_REVISION_HISTORY

            # A pass whose cache has not seen the revision yet: the create conflicts, the
            # revision is read back by name, and its number stands.
            ws = await _with_label(client, "v7")
            assert await sync_revision(client, ws, []) == "8"
            annotations = (await client.get(WORKSPACES, ObjectKey("default", "rev")))["metadata"][
                "annotations"
            ]
            assert annotations["workspace.kaito.io/revision"] == "8"
        finally:
            await client.close()
