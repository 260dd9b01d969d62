"""The data and tuning entry points fail cheaply without the ML stack (a bad flag or config never
waits for torch to import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.runtime.tuning.processes import SOURCE_ROOT

# Run ``python -m MODULE ARGS`` with the ML stack made unimportable.
BLOCK_ML = (
    "import runpy, sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in {'torch','transformers','peft','trl','datasets'}:\n"
    "            raise ImportError('blocked: ' + name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "module = sys.argv[1]\n"
    "sys.argv = [module, *sys.argv[2:]]\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


@pytest.mark.parametrize(
    ("module", "args", "code"),
    [
        pytest.param("kaito_runtime.data", ["fetch", "--dest", "/tmp/x"], 2, id="data"),
        pytest.param("kaito_runtime.tuning", ["--config", "/nonexistent.yaml"], 2, id="tuning"),
    ],
)
def test_entrypoints_fail_fast_without_the_ml_stack(
    module: str, args: list[str], code: int
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_ML, module, *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(SOURCE_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert "blocked" not in proc.stderr
