"""Benchmarks: one module per subject (``bench_<name>.py``), run by ``nox -s bench -- NAME...``."""
