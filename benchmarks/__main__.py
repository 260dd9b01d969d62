"""Run benchmarks: ``python -m benchmarks [NAME ...]`` (all when no name is given).

Each ``benchmarks/bench_<name>.py`` exposes ``run() -> list[str]`` returning its result lines,
each ``NAME: ours=X baseline[WHAT]=Y ratio=Z``, measured side by side in one run.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    if not names:
        print("no benchmarks are defined yet")
        return 0
    print(f"# python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        for line in module.run():
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
