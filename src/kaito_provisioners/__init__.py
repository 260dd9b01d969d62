"""Node provisioners: the ``NodeProvisioner`` Protocol and its backends (AKS, Karpenter, fake).

Controllers import only this package's Protocol and data types; each backend lives in its own
module and is chosen by the manager's ``--node-provisioner`` flag.
"""

from __future__ import annotations

from kaito_provisioners._base import (
    GPU_TAINT,
    CollectsGarbage,
    NodeProvisioner,
    NodeRequest,
    NodeSetStatus,
    ProvisionedNode,
    ProvisioningError,
    Taint,
    node_claim_name,
)
from kaito_provisioners._gc import GC_CONTROLLER, add_garbage_collector
from kaito_provisioners._metrics import ProvisioningMetrics, ProvisioningStats

__all__ = (
    "GC_CONTROLLER",
    "GPU_TAINT",
    "CollectsGarbage",
    "NodeProvisioner",
    "NodeRequest",
    "NodeSetStatus",
    "ProvisionedNode",
    "ProvisioningError",
    "ProvisioningMetrics",
    "ProvisioningStats",
    "Taint",
    "add_garbage_collector",
    "node_claim_name",
)
