"""The layers contract in ``pyproject.toml`` places every part of ``kaito``, and the architecture
document draws the same layers: a new package cannot land outside the picture."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layered,) = [c for c in contracts if c["type"] == "layers"]
    return [[m.strip() for m in layer.split("|")] for layer in layered["layers"]]


def test_every_part_of_kaito_sits_in_one_layer() -> None:
    parts = {
        f"kaito.{p.stem if p.suffix == '.py' else p.name}"
        for p in (ROOT / "src" / "kaito").iterdir()
        if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").exists())
    }
    placed = [m for layer in _layers() for m in layer]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    assert sorted(parts - set(placed)) == [], "place these in the layers contract"
    assert sorted(set(placed) - parts) == [], "the layers contract names modules that are gone"


def test_the_architecture_document_draws_the_contracts_layers() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    picture = doc.split("<!-- layers -->")[1]
    drawn = [
        [m.strip() for m in line.strip().split("|")]
        for line in picture.split("```")[1].strip().splitlines()
        if line.strip() and not line.strip().startswith(("v", "^"))
    ]
    assert drawn == _layers()
