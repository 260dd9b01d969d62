"""``kaito.apimachinery`` is the bottom layer: it imports nothing else of the project (the
import-linter contract says so too; this test also catches modules added later)."""

from __future__ import annotations

import ast
from pathlib import Path

import kaito.apimachinery

PACKAGE = Path(kaito.apimachinery.__file__).parent


def test_the_package_imports_only_itself_from_the_project() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in ("kaito", "kaito_provisioners", "kaito_runtime") and not name.startswith(
                    "kaito.apimachinery"
                ):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_every_public_name_is_exported_from_the_package() -> None:
    assert isinstance(kaito.apimachinery.__all__, tuple)
    for name in kaito.apimachinery.__all__:
        assert hasattr(kaito.apimachinery, name), name
