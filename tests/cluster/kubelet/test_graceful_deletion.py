"""Pod deletion as kube-apiserver and the kubelet do it: Terminating for the grace period while the
node stops the containers, then removed by the node; ``--grace-period=0 --force`` at once."""

from __future__ import annotations

import anyio
import pytest

from kaito.cluster import StatusError, start_cluster
from kaito.cluster._rest import DeleteOptions
from tests.cluster._helpers import eventually
from tests.cluster.kubelet._helpers import SLEEP_THEN_UP, Local, alive, pod, sh

pytestmark = pytest.mark.anyio


async def _gone(local: Local, name: str) -> bool:
    try:
        await local.pod(name)
    except StatusError as error:
        return error.code == 404
    return False


async def test_a_deleted_pod_is_terminating_until_its_processes_are_stopped(local: Local) -> None:
    stubborn = f"trap 'echo got TERM' TERM; {SLEEP_THEN_UP}; while :; do wait $!; sleep 1; done"
    await local.create(pod("stubborn", sh(stubborn), terminationGracePeriodSeconds=9))
    await local.follow_until("stubborn", b"up\n")
    pids = local.kubelet.process_ids()
    await local.cluster.client.delete("v1", "Pod", "stubborn", "t")
    terminating = await local.pod("stubborn")
    meta = terminating["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 9
    assert meta["deletionTimestamp"]
    await local.follow_until("stubborn", b"got TERM\n")
    # Still there, Terminating, while the trapped SIGTERM keeps the processes alive.
    assert not await _gone(local, "stubborn")
    assert any(alive(pid) for pid in pids)
    # A second delete may only shorten the grace period.
    await local.cluster.client.delete("v1", "Pod", "stubborn", "t")
    assert (await local.pod("stubborn"))["metadata"]["deletionGracePeriodSeconds"] == 9
    await local.clock.advance_when_due(9)
    await eventually(local.cluster, lambda: _gone(local, "stubborn"), within=20)
    assert not any(alive(pid) for pid in pids)


async def test_force_deletion_with_grace_zero_removes_the_pod_at_once(local: Local) -> None:
    await local.create(pod("forced", sh(SLEEP_THEN_UP + "; wait $!")))
    await local.follow_until("forced", b"up\n")
    pids = local.kubelet.process_ids()
    pods = local.cluster.rest.catalog.lookup("", "v1", "pods")
    assert pods is not None
    await local.cluster.rest.delete(pods, "t", "forced", DeleteOptions(grace_period_seconds=0))
    assert await _gone(local, "forced")
    with anyio.fail_after(20):
        await local.kubelet.wait_stopped("t", "forced")
    assert not any(alive(pid) for pid in pids)


async def test_unscheduled_and_finished_pods_are_removed_at_once(local: Local) -> None:
    await local.create(
        pod("nowhere", sh("true"), nodeSelector={"kubernetes.io/hostname": "no-such-node"})
    )
    await local.cluster.client.delete("v1", "Pod", "nowhere", "t")
    assert await _gone(local, "nowhere")
    await local.create(pod("done", sh("true"), restartPolicy="Never"))
    await local.wait("done", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    await local.cluster.client.delete("v1", "Pod", "done", "t")
    assert await _gone(local, "done")


async def test_the_simulated_kubelet_finishes_a_deletion_at_once() -> None:
    async with start_cluster(system_node=True) as cluster:
        await cluster.client.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "sim", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }
        )

        async def running() -> bool:
            found = await cluster.client.get("v1", "Pod", "sim", "default")
            return (found.get("status") or {}).get("phase") == "Running"

        await eventually(cluster, running)
        await cluster.client.delete("v1", "Pod", "sim", "default")

        async def gone() -> bool:
            try:
                await cluster.client.get("v1", "Pod", "sim", "default")
            except StatusError as error:
                return error.code == 404
            return False

        await eventually(cluster, gone, within=10)
