"""One export style across ``src/``: every public module says what it exports, once.

A public module is one whose dotted path has no part starting with ``_``. Implementation lives in
private modules (``_name.py``); the package that owns them re-exports the public names in a tuple
``__all__``. So each name has one import path, and code outside a package never reaches into its
private modules (tests and benchmarks may: they test and measure the package from inside).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TOP = ("kaito", "kaito_provisioners", "kaito_runtime")

# Facades: modules that gather, for one audience, names whose home is elsewhere. The thin test kit
# (``kaito.testing``, like ``kopf.testing``) is the one: what a platform team's CI needs from the
# in-process cluster and the embedded operator, in one import.
FACADES = frozenset({"kaito.testing"})


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> Iterator[Path]:
    for top in TOP:
        for path in sorted((SRC / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


PUBLIC = sorted(
    _dotted(p) for p in _sources() if p.name != "__main__.py" and _is_public(_dotted(p))
)


def _exports(name: str) -> tuple[types.ModuleType, tuple[str, ...]]:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, tuple), f"{name} needs a tuple __all__ (even an empty one)"
    return module, exported


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_a_tuple_of_real_names_and_misses_none(name: str) -> None:
    module, exported = _exports(name)
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert [n for n in exported if not hasattr(module, n)] == [], f"{name}.__all__"
    # Classes and functions of this project that the module makes public are in __all__.
    unlisted = sorted(
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and attr not in exported
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").split(".")[0] in TOP
        and (value.__module__ == name or value.__module__.startswith(name + "."))
    )
    assert unlisted == [], f"{name} makes these public without listing them in __all__"


def test_each_name_has_one_public_path() -> None:
    paths: dict[int, list[str]] = defaultdict(list)
    for name in PUBLIC:
        module, exported = _exports(name)
        for attr in exported:
            value = getattr(module, attr)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if getattr(value, "__module__", "").split(".")[0] not in TOP:
                continue
            if name in FACADES:
                continue
            paths[id(value)].append(f"{name}.{attr}")
    # (An alias inside one module, such as a Kubernetes function under both its names, is fine.)
    twice = sorted(p for p in paths.values() if len({n.rpartition(".")[0] for n in p}) > 1)
    assert twice == [], f"exported from more than one public module: {twice}"


def _private_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Imports of another package's private modules from ``path``."""
    here = _dotted(path) if path.is_relative_to(SRC) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] not in TOP:
                continue
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if not (package == owner or package.startswith(owner + ".")):
                        yield node.lineno, target
                    break


@pytest.mark.parametrize("tree", ["src", "examples"], ids=["src", "examples"])
def test_no_code_reaches_into_another_packages_private_modules(tree: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for path in sorted((ROOT / tree).rglob("*.py"))
        if "__pycache__" not in path.parts
        for line, target in _private_imports(path)
    ]
    assert found == [], "\n".join(found)
