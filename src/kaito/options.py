"""The manager's options: feature gates, provisioner choice, addresses; parsed and checked once.

Top layer (used by ``kaito manager`` and ``kaito up``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

__all__ = (
    "FEATURE_GATES",
    "PROVISIONERS",
    "ManagerOptions",
    "parse_address",
    "parse_feature_gates",
)

#: Upstream's feature gates and their defaults.
FEATURE_GATES: Final[Mapping[str, bool]] = {
    "vLLM": True,
    "disableNodeAutoProvisioning": False,
    "gatewayAPIInferenceExtension": False,
    "enableInferenceSetController": True,
    "enableMIG": False,
    "enableAccelerator": False,
    "enableMultiRoleInferenceController": False,
    "ModelMirror": False,
    "ModelStreaming": False,
    "enableBaseImageAutoUpgrade": False,
}
#: ``--node-provisioner`` values: upstream's (``azure-gpu-provisioner`` and ``karpenter`` write
#: NodeClaims, ``byo`` uses the user's nodes) and ours (``aks``: agent pools directly through
#: ARM; ``fake``: simulated GPU Nodes).
PROVISIONERS: Final = ("fake", "aks", "azure-gpu-provisioner", "karpenter", "byo")
NODE_IMAGE_FAMILIES: Final = ("ubuntu", "azurelinux")


def parse_feature_gates(text: str) -> dict[str, bool]:
    """``vLLM=true,enableMIG=false`` -> the full gate map; unknown gates are an error."""
    gates = dict(FEATURE_GATES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or value.lower() not in ("true", "false"):
            raise ValueError(f"--feature-gates: {item!r} is not NAME=true|false")
        if name not in FEATURE_GATES:
            raise ValueError(
                f"--feature-gates: unknown gate {name!r}; known gates: {', '.join(FEATURE_GATES)}"
            )
        gates[name] = value.lower() == "true"
    return gates


def parse_address(text: str) -> tuple[str, int] | None:
    """``:8080`` or ``127.0.0.1:8080`` -> ``(host, port)``; ``0`` or empty disables."""
    if text in ("", "0"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r} is not HOST:PORT or :PORT")
    return (host or "0.0.0.0", int(port))


@attrs.frozen
class ManagerOptions:
    """Everything ``kaito manager`` runs with."""

    kubeconfig: str | None = None
    node_provisioner: str = "fake"
    feature_gates: Mapping[str, bool] = attrs.field(factory=lambda: dict(FEATURE_GATES))
    metrics_address: tuple[str, int] | None = ("0.0.0.0", 8080)
    probe_address: tuple[str, int] | None = ("0.0.0.0", 8081)
    leader_elect: bool = False
    leader_election_namespace: str = "kaito-workspace"
    #: client-go's and controller-runtime's leader-election timings (seconds).
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_namespace: str = "kaito-workspace"
    cloud: str = "azure"
    runtime_image: str | None = None
    workers: int = 5
    fake_node_delay: float = 0.0
    allow_local_urls: bool = False
    #: ``aks``: the cluster whose agent pools KAITO manages (flags, else ARM_* / AZURE_* env).
    azure_subscription_id: str | None = None
    azure_resource_group: str | None = None
    azure_cluster_name: str | None = None
    azure_resource_manager_endpoint: str | None = None
    #: A CA bundle for ARM and the token endpoint (a TLS-intercepting proxy, an emulator).
    azure_ca_file: str | None = None
    #: ``karpenter``: the NodeClass NodeClaims reference (upstream's flags and defaults).
    karpenter_node_class_group: str = "karpenter.azure.com"
    karpenter_node_class_kind: str = "AKSNodeClass"
    karpenter_node_class_version: str = "v1beta1"
    karpenter_node_class_resource_name: str = "aksnodeclasses"
    karpenter_node_classes: str = ""
    #: Node image family of NodeClaims/pools whose Workspace names none (empty: ubuntu).
    default_node_image_family: str = ""
    #: Seconds between sweeps for nodes whose Workspace is gone (0 disables).
    node_gc_interval: float = 300.0
