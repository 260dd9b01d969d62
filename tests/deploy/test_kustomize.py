"""Every kustomization in deploy/ builds with ``kubectl kustomize`` and applies cleanly with
``kubectl apply -k`` (and a server-side apply dry run, as a platform team's CI checks an upgrade),
against a cluster serving the CRDs it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito.cluster import cluster_in_thread
from tests.deploy.conftest import OVERLAYS, Kubectl, documents, prerequisite_crds

pytestmark = pytest.mark.kubectl


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_overlay_builds_and_applies_cleanly(overlay: str, tmp_path: Path) -> None:
    objects = documents(overlay)
    names = sorted(f"{d['kind'].lower()}/{d['metadata']['name']}" for d in objects)
    path = str(OVERLAYS[overlay])
    with cluster_in_thread(crds=prerequisite_crds()) as cluster:
        kubectl = Kubectl(cluster.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")

        applied = kubectl("apply", "-k", path)
        assert applied.stderr == "", applied.stderr  # no warning: every field is known
        lines = applied.stdout.splitlines()
        assert all(line.endswith(" created") for line in lines), applied.stdout
        made = sorted(ref.split("/")[0].split(".")[0] + "/" + ref.split("/", 1)[1]
                      for ref in (line.rsplit(" ", 1)[0] for line in lines))  # fmt: skip
        assert made == names

        again = kubectl("apply", "-k", path).stdout.splitlines()
        # kubectl always sends a PodDisruptionBudget's selector (patchStrategy "replace" in its
        # OpenAPI), so it says "configured" where nothing changed; everything else is unchanged.
        assert [line for line in again if not line.endswith(" unchanged")] == [
            "poddisruptionbudget.policy/kaito-workspace configured"
        ]

        dry = kubectl("apply", "-k", path, "--server-side", "--dry-run=server")
        assert dry.stderr == "", dry.stderr
        assert len(dry.stdout.splitlines()) == len(objects)
        assert all(line.endswith("serverside-applied (server dry run)")
                   for line in dry.stdout.splitlines()), dry.stdout  # fmt: skip
