"""``kaito.cluster`` exports exactly what its ``__all__`` lists, as a tuple, and every module of the
package declares a tuple ``__all__`` whose names exist."""

from __future__ import annotations

import importlib
import pkgutil

import kaito.cluster


def test_package_all_is_a_tuple_of_existing_public_names() -> None:
    assert isinstance(kaito.cluster.__all__, tuple)
    assert list(kaito.cluster.__all__) == sorted(kaito.cluster.__all__)
    for name in kaito.cluster.__all__:
        assert hasattr(kaito.cluster, name), name
    public = {
        n
        for n in dir(kaito.cluster)
        if not n.startswith("_") and not isinstance(getattr(kaito.cluster, n), type(kaito))
    }
    assert public <= set(kaito.cluster.__all__), public - set(kaito.cluster.__all__)


def test_every_module_declares_all() -> None:
    for info in pkgutil.walk_packages(kaito.cluster.__path__, "kaito.cluster."):
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        assert isinstance(names, tuple), f"{info.name} lacks a tuple __all__"
        for name in names:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"
