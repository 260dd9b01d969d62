"""Fixtures for the in-process cluster tests: a shared cluster in a background thread (for kubectl
and HTTP checks), a fresh namespace per test, and a per-test async cluster."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kaito.cluster import Cluster, ThreadedCluster, cluster_in_thread, start_cluster

DATA = Path(__file__).parent / "data"
GADGETS_CRD = DATA / "gadgets.testing.kaito.sh.yaml"
NODECLAIMS_CRD = DATA / "nodeclaims.karpenter.sh.yaml"


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[ThreadedCluster]:
    """One cluster per test module, with the test CRDs installed."""
    with cluster_in_thread(crds=[GADGETS_CRD, NODECLAIMS_CRD]) as cluster:
        yield cluster


@pytest.fixture
def namespace(shared_cluster: ThreadedCluster) -> str:
    """A fresh namespace in the shared cluster."""
    name = f"t-{secrets.token_hex(4)}"
    shared_cluster.call(shared_cluster.cluster.create_namespace, name)
    return name


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A cluster of its own for one async test."""
    async with start_cluster(crds=[GADGETS_CRD, NODECLAIMS_CRD], bookmark_interval=0.2) as running:
        yield running


class Kubectl:
    """Runs the real kubectl against a cluster, with its own kubeconfig and discovery cache."""

    def __init__(self, kubeconfig: Path, cache_dir: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir
        self.namespace = namespace

    def command(self, *args: str) -> list[str]:
        """The full command line."""
        return [
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            "--namespace",
            self.namespace,
            *args,
        ]

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


@pytest.fixture
def kubectl(shared_cluster: ThreadedCluster, namespace: str, tmp_path: Path) -> Kubectl:
    """kubectl bound to the shared cluster and this test's namespace."""
    kubeconfig = shared_cluster.write_kubeconfig(tmp_path / "kubeconfig")
    return Kubectl(kubeconfig, tmp_path / "kube-cache", namespace)
