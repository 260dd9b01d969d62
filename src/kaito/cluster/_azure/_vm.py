"""What a cloud GPU VM does once it boots: its kubelet registers a Node (NotReady), turns it
Ready, then the NVIDIA device plugin advertises ``nvidia.com/gpu``; deleting the VM removes the
Node. Shared by the AKS emulator and the simulated Karpenter provider."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import attrs
import structlog
from anyio.abc import TaskStatus

from kaito.catalog import sku_catalog
from kaito.cluster._client import LocalClient
from kaito.cluster._errors import StatusError

__all__ = ("BootTimes", "VirtualMachineNodes", "gpu_count", "node_name_for")

log = structlog.get_logger(__name__)

_CPUS: Final = re.compile(r"^Standard_[A-Z]+?(\d+)", re.IGNORECASE)


@attrs.frozen
class BootTimes:
    """Seconds from a VM's creation to each step of its Node (all may be 0 in tests)."""

    #: Node registered (NotReady) -> Ready.
    ready: float = 0.5
    #: Ready -> the device plugin advertises ``nvidia.com/gpu``.
    device_plugin: float = 0.5


def gpu_count(instance_type: str) -> int:
    """GPUs of an instance type: the catalog's, else 1 for Azure's N-series (``Standard_N...``,
    which upstream also treats as GPU machines), else 0."""
    sku = sku_catalog().get(instance_type)
    if sku is not None:
        return sku.gpu_count
    return 1 if instance_type.startswith("Standard_N") else 0


def node_name_for(pool: str, cluster_key: str) -> str:
    """AKS's Node name for the first VM of a scale set: ``aks-<pool>-<8 digits>-vmss000000``."""
    digits = int(hashlib.sha256(f"{cluster_key}/{pool}".encode()).hexdigest()[:12], 16) % 10**8
    return f"aks-{pool}-{digits:08d}-vmss000000"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _capacity(instance_type: str, *, gpus: bool) -> dict[str, str]:
    match = _CPUS.match(instance_type)
    cpus = int(match.group(1)) if match else 8
    capacity = {
        "cpu": str(cpus),
        "memory": f"{cpus * 9}Gi",
        "pods": "110",
        "ephemeral-storage": "1Ti",
    }
    if gpus and gpu_count(instance_type):
        capacity["nvidia.com/gpu"] = str(gpu_count(instance_type))
    return capacity


def _ready_condition(ready: bool) -> dict[str, str]:
    stamp = _stamp()
    return {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "kubelet is posting ready status"
        if ready
        else "container runtime network not ready: NetworkReady=false",
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }


class VirtualMachineNodes:
    """Boots and deletes the Nodes of simulated VMs through the cluster's API."""

    def __init__(self, client: LocalClient, times: BootTimes) -> None:
        self.client = client
        self.times = times

    async def boot(
        self,
        name: str,
        *,
        instance_type: str,
        labels: Mapping[str, str],
        taints: list[dict[str, Any]],
        provider_id: str,
        annotations: Mapping[str, str] | None = None,
        device_plugin: bool = True,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Register the Node, then make it Ready and advertise its GPUs.

        Start it with ``TaskGroup.start``: it reports started once the Node is registered.
        """
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **labels},
                "annotations": dict(annotations or {}),
            },
            "spec": {"providerID": provider_id, **({"taints": taints} if taints else {})},
        }
        try:
            await self.client.create(node)
        except StatusError as err:
            if err.code != 409:
                raise
        index = sum(name.encode()) % 250 + 4
        status = {
            "capacity": _capacity(instance_type, gpus=False),
            "allocatable": _capacity(instance_type, gpus=False),
            "conditions": [_ready_condition(False)],
            "addresses": [
                {"type": "InternalIP", "address": f"10.224.0.{index}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
                "osImage": "Ubuntu 22.04.5 LTS",
                "kernelVersion": "5.15.0-1079-azure",
                "containerRuntimeVersion": "containerd://1.7.27-1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        registered = await self._patch_status(name, status)
        task_status.started()
        if not registered:
            return
        log.info("vm_node_registered", node=name, instance_type=instance_type)
        await anyio.sleep(self.times.ready)
        if not await self._patch_status(name, {"conditions": [_ready_condition(True)]}):
            return
        if not device_plugin:
            return
        await anyio.sleep(self.times.device_plugin)
        gpus = _capacity(instance_type, gpus=True)
        await self._patch_status(name, {"capacity": gpus, "allocatable": gpus})
        log.info("vm_node_gpus_advertised", node=name, gpus=gpus.get("nvidia.com/gpu", "0"))

    async def _patch_status(self, name: str, status: dict[str, Any]) -> bool:
        try:
            await self.client.patch("v1", "Node", name, {"status": status}, subresource="status")
        except StatusError as err:
            if err.code == 404:
                return False  # the VM was deleted while it booted
            raise
        return True

    async def delete(self, name: str) -> None:
        """Delete the Node (idempotent)."""
        try:
            await self.client.delete("v1", "Node", name)
        except StatusError as err:
            if err.code != 404:
                raise
