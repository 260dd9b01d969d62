"""`kaito validate` and `kaito crds`, driven as a user runs them (a real subprocess too)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kaito.api import render_crds
from kaito.cli import main

REPO = Path(__file__).resolve().parents[2]
#: The guide's examples; ``examples/local`` (``kaito up``'s, with loopback data) is valid where
#: local URLs are allowed.
EXAMPLES = sorted(
    str(p) for p in (REPO / "examples").rglob("*.yaml") if "local" not in p.parent.parts[-1:]
)
LOCAL_EXAMPLES = sorted(str(p) for p in (REPO / "examples" / "local").glob("*.yaml"))

BAD = """\
apiVersion: kaito.sh/v1alpha1
kind: Workspace
metadata:
  name: two-of-everything
resource:
  instanceType: Standard_NC6s_v3
  labelSelector:
    matchLabels:
      apps: x
inference:
  preset:
    name: phi-3-mini-4k-instruct
  adapters:
    - source: {name: a, image: "r.io/a:1"}
      strength: "1.5"
tuning:
  method: qlora
  input: {urls: ["https://example.com/a.parquet"]}
  output: {image: "r.io/out:1"}
---
apiVersion: kaito.sh/v1alpha1
kind: Workspace
metadata:
  name: fine
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector: {matchLabels: {apps: fine}}
inference:
  preset: {name: phi-4-mini-instruct, extraField: 1}
  config: my-params
"""

PARAMS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: my-params
data:
  inference_config.yaml: |
    vllm:
      max-model-len: 4096
"""


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def test_examples_are_valid() -> None:
    code, out = run("validate", *EXAMPLES)
    assert code == 0, out
    assert out.count(": valid") == len(EXAMPLES)


def test_local_examples_are_valid_where_local_urls_are_allowed() -> None:
    code, out = run("validate", "--allow-local-urls", *LOCAL_EXAMPLES)
    assert code == 0, out
    assert out.count(": valid") == len(LOCAL_EXAMPLES) == 2


def test_every_problem_of_every_document_is_printed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out = run("validate", str(path))
    assert code == 1
    assert "bad.yaml[0] Workspace/two-of-everything: invalid" in out
    assert "tuning: Forbidden: either inference or tuning must be specified, but not both" in out
    assert 'inference.adapters[0].strength: Invalid value: "1.5"' in out
    assert "tuning.output.imagePushSecret: Required value" in out
    assert "bad.yaml[1] Workspace/fine: invalid" in out
    assert "inference.preset.extraField: Unknown field" in out
    assert 'inference.config: Not found: "my-params"' in out


def test_config_maps_in_the_input_stand_for_the_cluster(tmp_path: Path) -> None:
    (tmp_path / "ws.yaml").write_text(BAD.split("---\n")[1].replace(", extraField: 1", ""))
    (tmp_path / "cm.yaml").write_text(PARAMS)
    code, out = run("validate", str(tmp_path / "ws.yaml"), str(tmp_path / "cm.yaml"))
    assert code == 0, out


def test_stdin_and_json_output() -> None:
    code, out = run("validate", "-o", "json", "-", stdin=BAD)
    assert code == 1
    report = json.loads(out)
    assert [r["valid"] for r in report] == [False, False]
    assert {p["field"] for p in report[0]["problems"]} >= {
        "tuning",
        "tuning.output.imagePushSecret",
    }


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata: [\n")
    code, out = run("validate", str(path))
    assert code == 1
    assert f"{path}:4:1: invalid (1 error)" in out
    assert "error: error converting YAML to JSON: yaml: line 4: did not find expected node" in out


def test_missing_file_and_no_workspaces(tmp_path: Path) -> None:
    code, out = run("validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "cannot read" in out
    (tmp_path / "cm.yaml").write_text(PARAMS)
    code, out = run("validate", str(tmp_path / "cm.yaml"))
    assert code == 1
    assert "no Workspace documents found" in out


def test_crds_command_prints_the_generated_crd(tmp_path: Path) -> None:
    code, out = run("crds")
    assert code == 0
    assert out == render_crds()
    code, out = run("crds", "--output-dir", str(tmp_path))
    assert (tmp_path / "kaito.sh_workspaces.yaml").read_text() == render_crds()


@pytest.mark.parametrize("module", ["kaito.cli"])
def test_console_entry_point_runs_in_a_subprocess(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())",
         "validate", *EXAMPLES],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
