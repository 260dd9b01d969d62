"""``kaito up --node-provisioner aks|karpenter``: the real flow on one machine (a subprocess):
agent pool or NodeClaim, then Node, then workload."""

from __future__ import annotations

import pytest

from tests.cli.test_up_cli import REPO, kaito


@pytest.mark.parametrize(
    ("backend", "says"),
    [
        ("aks", "AKS emulator: ARM https://127.0.0.1:"),
        pytest.param("karpenter", "kubectl get nodeclaims", marks=pytest.mark.slow),
    ],
)
def test_up_runs_the_guide_through_the_backend(backend: str, says: str, tmp_path: object) -> None:
    proc = kaito(
        "up", "--kubelet", "simulated", "--node-provisioner", backend, "--apply",
        str(REPO / "examples/inference/kaito_workspace_phi_3.yaml"), "--until-ready",
        cwd=tmp_path,  # type: ignore[arg-type]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert says in proc.stdout
    last_table = proc.stdout.split("\n\n")[-1].splitlines()
    assert last_table[1].split()[0] == "workspace-phi-3-mini"
    assert last_table[1].split()[-2] == "Ready"
