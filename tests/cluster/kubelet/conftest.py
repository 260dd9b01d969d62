"""Fixtures for the local kubelet: a cluster whose Pods run as real processes, on a stepped clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kaito.cluster import LocalKubelet, start_cluster
from tests.cluster.kubelet._helpers import Local, StepClock


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


async def _local(tmp_path: Path, clock: StepClock, sandbox: str) -> AsyncIterator[Local]:
    kubelet = LocalKubelet(root=tmp_path / "kubelet", clock=clock, sandbox=sandbox)
    try:
        async with kubelet, start_cluster(kubelet=kubelet, system_node=True) as cluster:
            await cluster.create_namespace("t")
            try:
                yield Local(cluster, kubelet, clock, tmp_path)
            finally:
                # Grace periods run on the stepped clock: let them pass at once while stopping.
                clock.release()
    finally:
        clock.release()


@pytest.fixture
async def local(tmp_path: Path, clock: StepClock) -> AsyncIterator[Local]:
    """A cluster with the local kubelet (bubblewrap where it works) and the system node."""
    async for running in _local(tmp_path, clock, "auto"):
        yield running


@pytest.fixture
async def host_local(tmp_path: Path, clock: StepClock) -> AsyncIterator[Local]:
    """The same with the host fallback (no mount namespace)."""
    async for running in _local(tmp_path, clock, "host"):
        yield running


@pytest.fixture(params=["auto", "host"], ids=["sandboxed", "host-fallback"])
async def each_local(
    request: pytest.FixtureRequest, tmp_path: Path, clock: StepClock
) -> AsyncIterator[Local]:
    """The local-kubelet cluster once with the sandbox and once with the host fallback."""
    async for running in _local(tmp_path, clock, request.param):
        yield running
