"""Start the simulated Karpenter on a running in-process cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog
import yaml

from kaito.cluster._controllers._loop import start_control_loop
from kaito.cluster._karpenter._simulator import KarpenterSimulator, KarpenterTimes

if TYPE_CHECKING:
    from kaito.cluster._cluster import Cluster

__all__ = ("karpenter_simulator", "nodeclaim_crd")

log = structlog.get_logger(__name__)


@cache
def _crd_text() -> str:
    return Path(__file__).with_name("nodeclaims.karpenter.sh.yaml").read_text()


def nodeclaim_crd() -> dict[str, Any]:
    """Karpenter's ``nodeclaims.karpenter.sh`` CustomResourceDefinition (a fresh dict)."""
    crd = yaml.safe_load(_crd_text())
    assert isinstance(crd, dict)
    return crd


@asynccontextmanager
async def karpenter_simulator(
    cluster: Cluster, *, times: KarpenterTimes | None = None
) -> AsyncIterator[KarpenterSimulator]:
    """Install the NodeClaim CRD and run the simulated Karpenter during the block."""
    await cluster.install_crds(await anyio.to_thread.run_sync(nodeclaim_crd))
    async with anyio.create_task_group() as tasks:
        simulator = KarpenterSimulator(cluster.client, times=times or KarpenterTimes(), tasks=tasks)
        start_control_loop(tasks, cluster.store, simulator)
        log.info("karpenter_simulator_started")
        try:
            yield simulator
        finally:
            tasks.cancel_scope.cancel()
