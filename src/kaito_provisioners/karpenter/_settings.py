"""Which NodeClass the NodeClaims reference, for upstream's two NodeClaim modes.

Provisioner layer. ``azure-gpu-provisioner`` (upstream's default) references
``kaito.sh/KaitoNodeClass`` ``default`` on Azure (``karpenter.k8s.aws/EC2NodeClass`` on AWS),
which Azure's gpu-provisioner fulfils; ``karpenter`` references the NodeClass named by
``--karpenter-node-class-*`` and ``--karpenter-node-classes`` for any Karpenter provider.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Final

import attrs

__all__ = ("KarpenterSettings", "NodeClassRef", "parse_node_classes")

_DNS1123_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
#: Upstream's NodeClass names per node image family when no ``--karpenter-node-classes`` is set.
IMAGE_FAMILY_CLASSES: Final = {
    "ubuntu": "image-family-ubuntu",
    "azurelinux": "image-family-azure-linux",
}


@attrs.frozen
class NodeClassRef:
    """``spec.nodeClassRef`` of a NodeClaim: the provider's NodeClass group, kind and name."""

    group: str
    kind: str
    name: str


def parse_node_classes(text: str) -> tuple[tuple[str, ...], str]:
    """``--karpenter-node-classes`` (a JSON array of ``{"name", "default", "spec"}``) -> the
    sorted names and the default one; ``ValueError`` says what is wrong, as upstream does."""
    try:
        entries = json.loads(text)
    except ValueError as err:
        raise ValueError(f"parsing --karpenter-node-classes as a JSON array: {err}") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("--karpenter-node-classes declares no NodeClasses")
    names: list[str] = []
    defaults: list[str] = []
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not name or not isinstance(name, str):
            raise ValueError(f"--karpenter-node-classes entry {i} has an empty name")
        if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            raise ValueError(
                f"--karpenter-node-classes entry {i} name {name!r} is not a valid resource name: "
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character"
            )
        if name in names:
            raise ValueError(f"--karpenter-node-classes declares {name!r} more than once")
        names.append(name)
        if entry.get("default"):
            defaults.append(name)
    if len(defaults) != 1:
        raise ValueError(
            f"--karpenter-node-classes must mark exactly one entry default, got {len(defaults)} "
            f"{defaults}"
        )
    return tuple(sorted(names)), defaults[0]


@attrs.frozen
class KarpenterSettings:
    """How NodeClaims are written and how long to wait after a failure (seconds)."""

    node_class_group: str = "kaito.sh"
    node_class_kind: str = "KaitoNodeClass"
    #: The default NodeClass; empty: by node image family (``image-family-ubuntu``...).
    node_class_name: str = "default"
    #: NodeClasses a Workspace may pick with ``kaito.sh/node-class-name`` (empty: any).
    node_class_names: tuple[str, ...] = ()
    cloud: str = "azure"
    #: The image family of Workspaces that name none (``--default-node-image-family``).
    default_node_image_family: str = "ubuntu"
    #: Wait before creating a NodeClaim again after the provider had no capacity.
    capacity_retry: float = 30.0
    #: How soon to look again while NodeClaims progress (None: the controller's own poll).
    recheck: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def gpu_provisioner(cls, cloud: str) -> KarpenterSettings:
        """Upstream's ``azure-gpu-provisioner`` mode: the fixed ``default`` NodeClass."""
        if cloud == "aws":
            return cls("karpenter.k8s.aws", "EC2NodeClass", "default", cloud=cloud)
        return cls("kaito.sh", "KaitoNodeClass", "default", cloud=cloud)

    def image_family(self, requested: str) -> str:
        """The Workspace's node image family, else the default."""
        family = (requested or self.default_node_image_family).lower()
        return family if family in IMAGE_FAMILY_CLASSES else "ubuntu"

    def node_class(self, requested: str, image_family: str) -> NodeClassRef:
        """The NodeClass for a Workspace: the one it asked for when allowed, else the default."""
        name = self.node_class_name or IMAGE_FAMILY_CLASSES[self.image_family(image_family)]
        if requested and (not self.node_class_names or requested in self.node_class_names):
            name = requested
        return NodeClassRef(self.node_class_group, self.node_class_kind, name)
