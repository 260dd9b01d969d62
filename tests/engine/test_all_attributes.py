"""Every public engine module declares a tuple ``__all__`` naming only what it defines."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import kaito.engine

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(kaito.engine.__path__) if not m.name.startswith("_")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_all_is_a_tuple_of_existing_names(name: str) -> None:
    module = importlib.import_module(f"kaito.engine.{name}")
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, tuple), f"kaito.engine.{name} needs a tuple __all__"
    for attr in exported:
        assert hasattr(module, attr), f"kaito.engine.{name}.__all__ names missing {attr}"


def test_package_reexports_every_module_export() -> None:
    assert isinstance(kaito.engine.__all__, tuple)
    assert sorted(kaito.engine.__all__) == sorted(set(kaito.engine.__all__))
    for name in MODULES:
        if name in ("stats", "http"):
            continue  # internal plumbing, reachable by module
        module = importlib.import_module(f"kaito.engine.{name}")
        missing = set(module.__all__) - set(kaito.engine.__all__)
        assert not missing, f"kaito.engine does not re-export {sorted(missing)} from {name}"
