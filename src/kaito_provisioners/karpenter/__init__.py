"""The NodeClaim backends (``--node-provisioner karpenter`` and ``azure-gpu-provisioner``)."""

from kaito_provisioners.karpenter._nodeclaim import nodeclaim_manifest
from kaito_provisioners.karpenter._provisioner import NODECLAIMS, NodeClaimProvisioner
from kaito_provisioners.karpenter._settings import (
    KarpenterSettings,
    NodeClassRef,
    parse_node_classes,
)

__all__ = (
    "NODECLAIMS",
    "KarpenterSettings",
    "NodeClaimProvisioner",
    "NodeClassRef",
    "nodeclaim_manifest",
    "parse_node_classes",
)
