"""Real OCI registries (Debian ``docker-registry``) on loopback, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry import Registry, run_registry

USER = "kaito"
PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry."""
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with htpasswd basic auth for ``USER``/``PASSWORD``."""
    with run_registry(tmp_path_factory.mktemp("auth-registry"), auth=(USER, PASSWORD)) as reg:
        yield reg
