"""How the Workspace controllers render workloads: images, ports, cloud, feature gates.

Controller layer. One frozen settings object is passed down; nothing reads the environment.
"""

from __future__ import annotations

from typing import Final

import attrs

from kaito import __version__
from kaito.api.templates import DEFAULT_RELEASE_NAMESPACE
from kaito_runtime.contract import SERVER_PORT

__all__ = ("DEFAULT_RUNTIME_IMAGE", "ControllerSettings")

#: The image with ``kaito_runtime`` (built from deploy/images/runtime.Dockerfile).
DEFAULT_RUNTIME_IMAGE: Final = f"kaito-runtime:{__version__}"


@attrs.frozen
class ControllerSettings:
    """Settings of the Workspace controllers."""

    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    runtime_image_pull_policy: str = "IfNotPresent"
    release_namespace: str = DEFAULT_RELEASE_NAMESPACE
    cloud: str = "azure"
    node_auto_provisioning: bool = True
    vllm_enabled: bool = True
    #: StorageClass of node-local NVMe disks; model weights use a PVC on SKUs with NVMe.
    local_nvme_storage_class: str | None = None
    #: Allow data URLs on loopback/private addresses (local development only).
    allow_local_urls: bool = False
    server_port: int = SERVER_PORT
