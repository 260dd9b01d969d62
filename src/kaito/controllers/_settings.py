"""How the Workspace controllers render workloads: images, ports, cloud, feature gates.

Controller layer. One frozen settings object is passed down; nothing reads the environment.
:func:`validation_context` is the one place the admission rules' context is built from it, for
the webhook and the reconciler alike.
"""

from __future__ import annotations

from typing import Final

import attrs

from kaito import __version__
from kaito.api import DEFAULT_RELEASE_NAMESPACE, ValidationContext
from kaito_runtime.contract import SERVER_PORT

__all__ = ("DEFAULT_RUNTIME_IMAGE", "ControllerSettings", "validation_context")

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
    #: Feature gates ``enableMIG`` and ``enableAccelerator`` (admission consults them).
    enable_mig: bool = False
    enable_accelerator: bool = False
    #: StorageClass of node-local NVMe disks; model weights use a PVC on SKUs with NVMe.
    local_nvme_storage_class: str | None = None
    #: Allow data URLs on loopback/private addresses (local development only).
    allow_local_urls: bool = False
    server_port: int = SERVER_PORT


def validation_context(settings: ControllerSettings) -> ValidationContext:
    """The admission rules' context under these settings (no cluster objects yet)."""
    return ValidationContext(
        node_auto_provisioning=settings.node_auto_provisioning,
        vllm_enabled=settings.vllm_enabled,
        enable_mig=settings.enable_mig,
        enable_accelerator=settings.enable_accelerator,
        cloud=settings.cloud,
        release_namespace=settings.release_namespace,
        allow_local_urls=settings.allow_local_urls,
    )
