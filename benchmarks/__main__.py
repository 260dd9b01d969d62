"""Run the named benchmarks (modules ``benchmarks/bench_<name>.py``), or all of them.

Each module exposes ``run() -> list[str]``; each line reads
``NAME: ours=X baseline[WHAT]=Y ratio=Z``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the benchmarks named in ``argv`` (all when empty); return the exit status."""
    here = Path(__file__).parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    print(f"# python {platform.python_version()} on {platform.machine()}, cpus={os.cpu_count()}")
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        for line in module.run():
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
