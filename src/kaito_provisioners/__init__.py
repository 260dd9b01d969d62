"""Node provisioners: the ``NodeProvisioner`` Protocol and its backends (AKS, Karpenter, fake).

Controllers import only this package's Protocol and data types; each backend lives in its own
module and is chosen by the manager's ``--node-provisioner`` flag.
"""

from __future__ import annotations

from kaito_provisioners.base import (
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

__all__ = (
    "GPU_TAINT",
    "CollectsGarbage",
    "NodeProvisioner",
    "NodeRequest",
    "NodeSetStatus",
    "ProvisionedNode",
    "ProvisioningError",
    "Taint",
    "node_claim_name",
)
