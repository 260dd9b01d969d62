"""``kaito.testing`` exports exactly what its ``__all__`` lists, as a tuple, and every module of the
package declares a tuple ``__all__`` whose names exist."""

from __future__ import annotations

import importlib
import pkgutil

import kaito.testing


def test_package_all_is_a_tuple_of_existing_public_names() -> None:
    assert isinstance(kaito.testing.__all__, tuple)
    assert list(kaito.testing.__all__) == sorted(kaito.testing.__all__)
    for name in kaito.testing.__all__:
        assert hasattr(kaito.testing, name), name
    public = {
        n
        for n in dir(kaito.testing)
        if not n.startswith("_") and not isinstance(getattr(kaito.testing, n), type(kaito))
    }
    assert public <= set(kaito.testing.__all__), public - set(kaito.testing.__all__)


def test_every_module_declares_all() -> None:
    for info in pkgutil.walk_packages(kaito.testing.__path__, "kaito.testing."):
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        assert isinstance(names, tuple), f"{info.name} lacks a tuple __all__"
        for name in names:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"
