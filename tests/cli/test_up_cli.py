"""`kaito up --kubelet simulated` as a user runs it (a real subprocess): no runtimes run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kaito(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-c", "from kaito.cli import main; main()", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_up_applies_the_guide_and_reports_ready(tmp_path: Path) -> None:
    proc = kaito(
        "up", "--kubelet", "simulated", "--apply", str(REPO / "examples/inference"),
        "--apply", str(REPO / "examples/fine-tuning"), "--until-ready", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "kaito.kubeconfig").exists()
    last_table = proc.stdout.split("\n\n")[-1].splitlines()
    assert last_table[0].split()[:3] == ["NAME", "INSTANCE", "RESOURCEREADY"]
    states = {line.split()[0]: line.split()[-2] for line in last_table[1:]}
    assert states == {
        "workspace-phi-3-mini": "Ready",
        "workspace-phi-3-mini-adapter": "Ready",
        "workspace-tuning-phi-3": "Succeeded",
    }


def test_up_refuses_an_invalid_workspace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "examples/inference/kaito_workspace_phi_3.yaml").read_text()
                   .replace("phi-3-mini-4k-instruct", "phi-5"))  # fmt: skip
    proc = kaito("up", "--kubelet", "simulated", "--apply", str(bad), "--until-ready", cwd=tmp_path)
    assert proc.returncode == 1
    assert 'inference.preset.name: Invalid value: "phi-5"' in proc.stderr
