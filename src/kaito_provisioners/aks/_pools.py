"""The agent pool KAITO asks AKS for, as upstream's gpu-provisioner shapes it from a NodeClaim.

Provisioner layer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from kaito_provisioners._base import NodeRequest
from kaito_provisioners._nodes import workspace_labels

__all__ = ("LABEL_CREATION", "LABEL_MACHINE_TYPE", "agent_pool_body", "os_sku")

LABEL_NODEPOOL: Final = "karpenter.sh/nodepool"
LABEL_MACHINE_TYPE: Final = "kaito.sh/machine-type"
LABEL_CREATION: Final = "kaito.sh/creation-timestamp"
#: Go layout ``2006-01-02T15-04-05Z``: a timestamp that is a valid label value.
CREATION_LAYOUT: Final = "%Y-%m-%dT%H-%M-%SZ"
MIN_OS_DISK_GB: Final = 30


def os_sku(node_image_family: str) -> str:
    """``AzureLinux`` for the ``azurelinux`` image family, else ``Ubuntu`` (upstream's rule)."""
    return "AzureLinux" if node_image_family.lower() == "azurelinux" else "Ubuntu"


def agent_pool_body(
    request: NodeRequest, *, default_family: str = "ubuntu", now: datetime | None = None
) -> dict[str, Any]:
    """One VMSS agent pool of one node: the VM size, OS, disk, taints and labels of the claim."""
    vm_size = request.instance_type
    labels = {
        LABEL_NODEPOOL: "kaito",
        **workspace_labels(request),
        LABEL_MACHINE_TYPE: "gpu" if "Standard_N" in vm_size else "cpu",
        LABEL_CREATION: (now or datetime.now(UTC)).strftime(CREATION_LAYOUT),
    }
    return {
        "properties": {
            "type": "VirtualMachineScaleSets",
            "vmSize": vm_size,
            "count": 1,
            "osType": "Linux",
            "osSKU": os_sku(request.node_image_family or default_family),
            "osDiskSizeGB": max(MIN_OS_DISK_GB, math.ceil(request.disk_gib)),
            "nodeTaints": [str(t) for t in request.taints],
            "nodeLabels": labels,
        }
    }
