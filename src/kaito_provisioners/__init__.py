"""Node provisioners: the ``NodeProvisioner`` Protocol and its backends (AKS, Karpenter, fake)."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
