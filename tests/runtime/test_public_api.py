"""Every public runtime module declares a tuple ``__all__`` that lists what it exports."""

from __future__ import annotations

import importlib
import types

import pytest

MODULES = (
    "kaito_runtime.oci",
    "kaito_runtime.adapters",
    "kaito_runtime.inference",
    "kaito_runtime.inference.backends",
)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_a_tuple_of_existing_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, tuple)
    for item in exported:
        assert hasattr(module, item), item
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", name).startswith("kaito_runtime")
        and attr not in {"annotations"}
    }
    assert public <= set(exported)
