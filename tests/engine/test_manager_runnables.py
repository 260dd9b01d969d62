"""Runnables in the Manager: what needs the lease runs on the leader only, what does not runs on
every replica; all of them stop cleanly when the manager stops or is cancelled.

Two managers compete for one Lease on the in-process API server, as two replicas of an operator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from kaito.cluster import Cluster, Controllers, start_cluster
from kaito.engine import (
    LEASES,
    KubeClient,
    LeaderElectionConfig,
    LeaderElectionRunnable,
    Manager,
    Runnable,
    load_client,
    needs_leader_election,
)

pytestmark = pytest.mark.anyio
LEASE_NS = "kaito-system"


class Probe:
    """A runnable that records its start and its cancellation, and serves until cancelled."""

    def __init__(self, replica: str, kind: str, log: list[tuple[str, str, str]]) -> None:
        self.replica = replica
        self.kind = kind
        self.log = log
        self.running = anyio.Event()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self.log.append((self.replica, self.kind, "started"))
        self.running.set()
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            self.log.append((self.replica, self.kind, "stopped"))


class Everywhere(Probe):
    """Says it does not need the lease (a webhook server)."""

    def needs_leader_election(self) -> bool:
        return False


class SeesLease:
    """Forwards to a client; ``held`` is set once a Lease read shows another holder."""

    def __init__(self, inner: KubeClient, identity: str) -> None:
        self.inner = inner
        self.identity = identity
        self.held = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, resource: Any, key: Any) -> Any:
        found = await self.inner.get(resource, key)
        holder = (found.get("spec") or {}).get("holderIdentity")
        if resource == LEASES and holder and holder != self.identity:
            self.held.set()
        return found


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with start_cluster(controllers=Controllers.api_only()) as running:
        await running.create_namespace(LEASE_NS)
        yield running


@asynccontextmanager
async def client_of(cluster: Cluster, path: Path) -> AsyncIterator[KubeClient]:
    cluster.write_kubeconfig(path)
    client = await load_client(str(path))
    try:
        yield client
    finally:
        await client.close()


def replica(client: Any, name: str, log: list[tuple[str, str, str]]) -> Manager:
    manager = Manager(
        client,
        name=name,
        leader_election=LeaderElectionConfig(
            "runnables-lock",
            LEASE_NS,
            identity=name,
            lease_duration=15,
            renew_deadline=10,
            retry_period=0.25,
        ),
        graceful_shutdown=2,
    )
    manager.add_runnable("webhooks", Everywhere(name, "everywhere", log))
    manager.add_runnable("singleton", Probe(name, "leader-only", log))
    return manager


def test_runnables_say_whether_they_need_the_lease() -> None:
    log: list[tuple[str, str, str]] = []
    assert isinstance(Probe("r", "k", log), Runnable)
    assert isinstance(Everywhere("r", "k", log), LeaderElectionRunnable)
    assert needs_leader_election(Probe("r", "k", log)) is True  # the default, as upstream
    assert needs_leader_election(Everywhere("r", "k", log)) is False


def test_names_are_unique() -> None:
    manager = Manager(client=None)  # type: ignore[arg-type]  # never run
    manager.add_runnable("a", Probe("r", "k", []))
    with pytest.raises(ValueError, match="already used"):
        manager.add_runnable("a", Probe("r", "k", []), leader_election=False)


async def test_a_standby_runs_only_what_needs_no_lease(cluster: Cluster, tmp_path: Path) -> None:
    log: list[tuple[str, str, str]] = []
    async with (
        client_of(cluster, tmp_path / "a") as client_a,
        client_of(cluster, tmp_path / "b") as client_b,
    ):
        watched_b = SeesLease(client_b, "b")
        leader, standby = replica(client_a, "a", log), replica(watched_b, "b", log)
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader.run)
            with anyio.fail_after(20):
                await leader.leading.wait()
                singleton = leader.runnables["singleton"][0]
                assert isinstance(singleton, Probe)
                await singleton.running.wait()
            standby_scope = anyio.CancelScope()

            async def run_standby() -> None:
                with standby_scope:
                    await standby.run()

            tg.start_soon(run_standby)
            with anyio.fail_after(20):
                await standby.started.wait()  # its runnables without the lease are serving
                await standby.informers.wait_synced()
                await watched_b.held.wait()  # it campaigned, and found the Lease held by "a"
            assert standby.elector is not None and not standby.elector.is_leader
            assert ("b", "everywhere", "started") in log
            assert ("b", "leader-only", "started") not in log
            assert {("a", "everywhere", "started"), ("a", "leader-only", "started")} <= set(log)

            standby_scope.cancel()  # cancelled: the process is going away
            leader.stop()  # graceful: drains, then cancels its runnables
    assert sorted(e for e in log if e[2] == "stopped") == [
        ("a", "everywhere", "stopped"),
        ("a", "leader-only", "stopped"),
        ("b", "everywhere", "stopped"),
    ]


async def test_without_leader_election_everything_runs_and_stops(
    cluster: Cluster, tmp_path: Path
) -> None:
    log: list[tuple[str, str, str]] = []
    async with client_of(cluster, tmp_path / "kubeconfig") as client:
        manager = Manager(client, name="solo")
        manager.add_runnable("webhooks", Everywhere("solo", "everywhere", log))
        manager.add_runnable("singleton", Probe("solo", "leader-only", log))
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run)
            with anyio.fail_after(20):
                await manager.started.wait()
                singleton = manager.runnables["singleton"][0]
                assert isinstance(singleton, Probe)
                await singleton.running.wait()
            with pytest.raises(RuntimeError, match="running manager"):
                manager.add_runnable("late", Probe("solo", "late", log))
            tg.cancel_scope.cancel()
    assert sorted(log) == [
        ("solo", "everywhere", "started"),
        ("solo", "everywhere", "stopped"),
        ("solo", "leader-only", "started"),
        ("solo", "leader-only", "stopped"),
    ]
