"""Fixtures: one cluster with the local kubelet and networking per module, a namespace per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster, local_cluster


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster whose Pods run as processes and whose Services are served on loopback."""
    with local_cluster(tmp_path_factory.mktemp("local")) as running:
        yield running


@pytest.fixture
def ns(local: LocalCluster) -> str:
    """A fresh namespace."""
    return local.namespace()


@pytest.fixture
def kubectl(local: LocalCluster, ns: str) -> Kubectl:
    """kubectl bound to the test's namespace."""
    return local.kubectl(ns)
