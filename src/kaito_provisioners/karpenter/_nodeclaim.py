"""The NodeClaim KAITO writes for a node of a Workspace, shaped as upstream writes it.

Provisioner layer.
"""

from __future__ import annotations

import math
from typing import Any, Final

from kaito_provisioners._base import NodeRequest
from kaito_provisioners._nodes import workspace_labels
from kaito_provisioners.karpenter._settings import KarpenterSettings

__all__ = ("NODECLAIM_API", "nodeclaim_manifest")

NODECLAIM_API: Final = "karpenter.sh/v1"
LABEL_NODEPOOL: Final = "karpenter.sh/nodepool"
KAITO_NODEPOOL: Final = "kaito"
DO_NOT_DISRUPT: Final = "karpenter.sh/do-not-disrupt"
NODE_IMAGE_FAMILY: Final = "kaito.sh/node-image-family"


def nodeclaim_manifest(
    request: NodeRequest, name: str, settings: KarpenterSettings
) -> dict[str, Any]:
    """A ``karpenter.sh/v1`` NodeClaim: the fake ``kaito`` nodepool label (Karpenter scales
    nothing for it), the workspace's labels, do-not-disrupt, the image family, the instance type
    as a requirement, the GPU taint and the disk the preset needs."""
    instance_type = request.instance_type
    requirements = [
        {"key": LABEL_NODEPOOL, "operator": "In", "values": [KAITO_NODEPOOL]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance_type]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    if settings.cloud == "azure":
        requirements.append(
            {"key": "karpenter.azure.com/sku-name", "operator": "In", "values": [instance_type]}
        )
    elif settings.cloud == "aws":
        requirements.append(
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}
        )
    node_class = settings.node_class(request.node_class, request.node_image_family)
    return {
        "apiVersion": NODECLAIM_API,
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": {LABEL_NODEPOOL: KAITO_NODEPOOL, **workspace_labels(request)},
            "annotations": {
                DO_NOT_DISRUPT: "true",
                NODE_IMAGE_FAMILY: settings.image_family(request.node_image_family),
            },
        },
        "spec": {
            "nodeClassRef": {
                "group": node_class.group,
                "kind": node_class.kind,
                "name": node_class.name,
            },
            "taints": [
                {"key": t.key, "value": t.value, "effect": t.effect} for t in request.taints
            ],
            "requirements": requirements,
            "resources": {"requests": {"storage": f"{math.ceil(request.disk_gib)}Gi"}},
        },
    }
