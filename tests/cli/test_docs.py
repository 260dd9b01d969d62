"""docs/reference/ is what ``kaito docs`` generates from the API types and the catalogs."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kaito.api import workspace_schema
from kaito.catalog import preset_catalog, sku_catalog
from kaito.cli import main
from kaito.reference import render_reference

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"


def test_the_committed_reference_is_current() -> None:
    for name, text in render_reference().items():
        committed = (REFERENCE / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/reference/{name} is stale: run `kaito docs`"


def test_the_reference_covers_every_field_preset_and_sku() -> None:
    rendered = render_reference()
    for name in ("instanceType", "adapters", "imagePushSecret", "modelAccessSecret", "partition"):
        assert f"| `{name}` |" in rendered["workspace.md"], name
    tuning = workspace_schema("v1beta1")["properties"]["tuning"]["properties"]
    assert all(f"| `{field}` |" in rendered["workspace.md"] for field in tuning)
    assert all(f"| `{p.name}` |" in rendered["presets.md"] for p in preset_catalog())
    assert all(f"| `{s.name}` |" in rendered["skus.md"] for s in sku_catalog())


def test_kaito_docs_writes_then_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    stale = runner.invoke(main, ["docs", "--output-dir", str(tmp_path), "--check"])
    assert stale.exit_code == 1
    assert "out of date" in stale.output
    written = runner.invoke(main, ["docs", "--output-dir", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["presets.md", "skus.md", "workspace.md"]
    assert runner.invoke(main, ["docs", "--output-dir", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "skus.md").write_text("edited by hand\n")
    assert runner.invoke(main, ["docs", "--output-dir", str(tmp_path), "--check"]).exit_code == 1
