"""Dispatch ``python -m benchmarks [NAME ...]`` to ``benchmarks.bench_NAME`` (all if none)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys

import benchmarks


def main(argv: list[str]) -> int:
    available = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    names = argv or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"unknown benchmark(s) {unknown}; choose from: {', '.join(available)}", file=sys.stderr
        )
        return 2
    print(f"python={platform.python_version()} cpus={os.cpu_count()}")
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        lines = module.run()
        for line in lines or ():
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
