"""Public modules declare a tuple ``__all__`` that lists only names they really export; the manager
imports without the ML stack."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kaito

SRC = Path(__file__).resolve().parents[2] / "src"


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(kaito.__path__, "kaito."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _public_modules())
def test_all_is_a_tuple_of_real_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} exports nothing")
    assert isinstance(exported, tuple), f"{name}.__all__ must be a tuple"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []
    assert len(set(exported)) == len(exported)


def test_manager_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch','transformers','peft','trl','datasets','vllm'}:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import kaito, kaito.api, kaito.catalog, kaito.cli\n"
        "from kaito.cli import main\n"
        "sys.argv = ['kaito', 'crds']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "workspaces.kaito.sh" in proc.stdout
