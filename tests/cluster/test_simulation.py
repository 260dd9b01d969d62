"""The simulated controllers: scheduling (selectors, taints, GPUs), workloads and the pluggable kubelet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from kaito.cluster import Cluster, PodStatusWriter, start_cluster
from kaito.cluster._json import Obj
from tests.cluster._helpers import eventually

pytestmark = pytest.mark.anyio


def pod(
    name: str,
    *,
    gpus: int = 0,
    selector: dict[str, str] | None = None,
    tolerations: list[Obj] | None = None,
) -> Obj:
    container: Obj = {"name": "main", "image": "kaito-base:0.5.0"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: Obj = {"containers": [container]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def get_pod(cluster: Cluster, name: str) -> Obj:
    return await cluster.client.get("v1", "Pod", name, "default")


def condition(obj: Obj, kind: str) -> Obj | None:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), None
    )


async def test_pods_go_to_matching_gpu_nodes_and_report_unschedulable_otherwise(
    cluster: Cluster,
) -> None:
    await cluster.add_node(
        "gpu-1",
        gpus=1,
        labels={"apps": "phi-4"},
        taints=[{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
    )
    await cluster.add_node("cpu-1")
    toleration = [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    await cluster.client.create(
        pod("first", gpus=1, selector={"apps": "phi-4"}, tolerations=toleration)
    )

    async def first_running() -> bool:
        found = await get_pod(cluster, "first")
        return found["spec"].get("nodeName") == "gpu-1" and found["status"]["phase"] == "Running"

    await eventually(cluster, first_running)
    first = await get_pod(cluster, "first")
    assert condition(first, "Ready")["status"] == "True"  # type: ignore[index]
    assert condition(first, "PodScheduled")["status"] == "True"  # type: ignore[index]
    await cluster.client.create(pod("second", gpus=1, tolerations=toleration))
    await cluster.client.create(pod("untolerated", gpus=1, selector={"apps": "phi-4"}))

    async def reported(name: str) -> Obj | None:
        found = await get_pod(cluster, name)
        scheduled = condition(found, "PodScheduled")
        return scheduled if scheduled and scheduled["status"] == "False" else None

    async def both_reported() -> bool:
        return await reported("second") is not None and await reported("untolerated") is not None

    await eventually(cluster, both_reported)
    second = await reported("second")
    untolerated = await reported("untolerated")
    assert second is not None and untolerated is not None
    assert second["reason"] == "Unschedulable"
    assert second["message"] == (
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    assert untolerated["message"].startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {sku: gpu}."
    )
    events = await cluster.client.list(
        "v1",
        "Event",
        "default",
        field_selector="involvedObject.name=second,reason=FailedScheduling",
    )
    assert events and events[0]["type"] == "Warning"
    await cluster.add_node("gpu-2", gpus=2)

    async def second_bound() -> bool:
        return (await get_pod(cluster, "second"))["spec"].get("nodeName") == "gpu-2"

    await eventually(cluster, second_bound)


def deployment(name: str, replicas: int, image: str = "app:1") -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


async def test_deployments_report_ready_replicas_and_roll_out(cluster: Cluster) -> None:
    await cluster.add_node("n1")
    await cluster.client.create(deployment("web", 2))

    async def ready(image: str) -> bool:
        found = await cluster.client.get("apps/v1", "Deployment", "web", "default")
        status = found.get("status") or {}
        pods = await cluster.client.list("v1", "Pod", "default", label_selector="app=web")
        return (
            status.get("readyReplicas") == 2
            and status.get("availableReplicas") == 2
            and status.get("updatedReplicas") == 2
            and status.get("observedGeneration") == found["metadata"]["generation"]
            and sorted(p["spec"]["containers"][0]["image"] for p in pods) == [image, image]
        )

    await eventually(cluster, lambda: ready("app:1"))
    found = await cluster.client.get("apps/v1", "Deployment", "web", "default")
    assert condition(found, "Available")["status"] == "True"  # type: ignore[index]
    await cluster.client.patch(
        "apps/v1",
        "Deployment",
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app:2"}]}}}},
        namespace="default",
        patch_type="strategic",
    )
    await eventually(cluster, lambda: ready("app:2"))


class GatedKubelet:
    """Pods start Running but become Ready only when the test opens their gate."""

    def __init__(self) -> None:
        self.gates: dict[str, anyio.Event] = {}
        self.started: list[str] = []

    def gate(self, name: str) -> anyio.Event:
        return self.gates.setdefault(name, anyio.Event())

    async def run_pod(self, pod: Obj, status: PodStatusWriter) -> None:
        self.started.append(status.name)
        await status.running(ready=False)
        await self.gate(status.name).wait()
        if pod["spec"].get("restartPolicy") == "Never":
            await status.failed(exit_code=3, message="boom")
            return
        await status.running(ready=True)
        await anyio.sleep_forever()


@pytest.fixture
async def gated() -> AsyncIterator[tuple[Cluster, GatedKubelet]]:
    kubelet = GatedKubelet()
    async with start_cluster(kubelet=kubelet) as running:
        await running.add_node("n1", gpus=8)
        yield running, kubelet


async def test_ordered_statefulsets_wait_for_each_pod_to_be_ready(
    gated: tuple[Cluster, GatedKubelet],
) -> None:
    cluster, kubelet = gated
    labels = {"app": "ws"}
    await cluster.client.create(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "ws"},
            "spec": {
                "replicas": 2,
                "serviceName": "ws-headless",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
    )

    async def started(names: list[str]) -> bool:
        return kubelet.started == names

    await eventually(cluster, lambda: started(["ws-0"]))
    assert [p["metadata"]["name"] for p in await cluster.client.list("v1", "Pod", "default")] == [
        "ws-0"
    ]
    kubelet.gate("ws-0").set()
    await eventually(cluster, lambda: started(["ws-0", "ws-1"]))
    pod0 = await get_pod(cluster, "ws-0")
    assert pod0["spec"]["hostname"] == "ws-0" and pod0["spec"]["subdomain"] == "ws-headless"
    assert pod0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "ws-0"
    kubelet.gate("ws-1").set()

    async def all_ready() -> bool:
        status = (await cluster.client.get("apps/v1", "StatefulSet", "ws", "default")).get(
            "status"
        ) or {}
        return status.get("readyReplicas") == 2 and status.get("availableReplicas") == 2

    await eventually(cluster, all_ready)


async def test_jobs_report_success_and_failure(gated: tuple[Cluster, GatedKubelet]) -> None:
    cluster, kubelet = gated

    def job(name: str, backoff: int) -> Obj:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": backoff,
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                },
            },
        }

    await cluster.client.create(job("fails", 1))

    async def job_condition(name: str, kind: str) -> bool:
        found = await cluster.client.get("batch/v1", "Job", name, "default")
        return (condition(found, kind) or {}).get("status") == "True"

    async def pods_started(count: int) -> bool:
        return len([n for n in kubelet.started if n.startswith("fails-")]) >= count

    await eventually(cluster, lambda: pods_started(1))
    for name in list(kubelet.started):
        kubelet.gate(name).set()
    await eventually(cluster, lambda: pods_started(2))
    for name in list(kubelet.started):
        kubelet.gate(name).set()
    await eventually(cluster, lambda: job_condition("fails", "Failed"))
    failed = await cluster.client.get("batch/v1", "Job", "fails", "default")
    assert failed["status"]["failed"] == 2
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]


async def test_default_kubelet_completes_jobs(cluster: Cluster) -> None:
    await cluster.add_node("n1")
    await cluster.client.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "tune"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                }
            },
        }
    )

    async def complete() -> bool:
        found: dict[str, Any] = await cluster.client.get("batch/v1", "Job", "tune", "default")
        return (condition(found, "Complete") or {}).get("status") == "True" and found["status"].get(
            "succeeded"
        ) == 1

    await eventually(cluster, complete)
    job = await cluster.client.get("batch/v1", "Job", "tune", "default")
    assert job["spec"]["selector"]["matchLabels"] == {
        "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]
    }
    assert job["status"]["completionTime"]
