"""Benchmarks: ``python -m benchmarks NAME ...`` (``nox -s bench -- NAME ...``)."""
