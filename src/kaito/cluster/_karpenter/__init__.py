"""A simulated Karpenter for the in-process cluster: the ``karpenter.sh/v1`` NodeClaim CRD as
Karpenter defines it, and a controller that turns NodeClaims into GPU Nodes with Karpenter's
conditions, finalizer and timings; launch failures are injectable. See ``docs/provisioners.md``.
"""

from kaito.cluster._karpenter._run import karpenter_simulator, nodeclaim_crd
from kaito.cluster._karpenter._simulator import (
    KarpenterFaultKind,
    KarpenterSimulator,
    KarpenterTimes,
)

__all__ = (
    "KarpenterFaultKind",
    "KarpenterSimulator",
    "KarpenterTimes",
    "karpenter_simulator",
    "nodeclaim_crd",
)
