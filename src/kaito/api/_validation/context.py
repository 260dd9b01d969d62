"""What validation may know about the cluster: feature gates, ConfigMaps, nodes.

API layer. Validation is pure: the caller (the admission webhook, or ``kaito validate`` reading
files) gathers the ConfigMaps and nodes a Workspace refers to and passes them in here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from kaito.api._templates import DEFAULT_RELEASE_NAMESPACE, default_template
from kaito.api.constants import (
    DEFAULT_INFERENCE_CONFIG_TEMPLATE,
    DEFAULT_LORA_CONFIG_TEMPLATE,
    DEFAULT_QLORA_CONFIG_TEMPLATE,
)
from kaito.catalog import PresetCatalog, SKUCatalog, preset_catalog, sku_catalog

__all__ = ("NodeInfo", "ValidationContext", "config_map_ref")

GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_COUNT_LABEL: Final = "nvidia.com/gpu.count"
GPU_MEMORY_LABEL: Final = "nvidia.com/gpu.memory"


@attrs.frozen
class NodeInfo:
    """A node as validation sees it: name, labels, readiness."""

    name: str
    labels: Mapping[str, str] = attrs.field(factory=dict)
    ready: bool = True


@attrs.frozen
class ValidationContext:
    """Feature gates and the cluster objects a Workspace refers to.

    ``config_maps`` maps ``(namespace, name)`` to ConfigMap data; ``None`` means "the cluster is
    unknown" and existence checks are skipped (with a warning). The default templates in the
    release namespace are built in and need not be listed. ``nodes`` lists the cluster's nodes for
    bring-your-own checks (``None``: unknown).
    """

    node_auto_provisioning: bool = True
    vllm_enabled: bool = True
    enable_mig: bool = False
    enable_accelerator: bool = False
    cloud: str = "azure"
    release_namespace: str = DEFAULT_RELEASE_NAMESPACE
    config_maps: Mapping[tuple[str, str], Mapping[str, str]] | None = None
    nodes: tuple[NodeInfo, ...] | None = None
    allow_local_urls: bool = False
    presets: PresetCatalog = attrs.field(factory=preset_catalog)
    skus: SKUCatalog = attrs.field(factory=sku_catalog)

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """Data of ConfigMap ``namespace/name``; built-in templates in the release namespace."""
        if self.config_maps is not None and (namespace, name) in self.config_maps:
            return self.config_maps[(namespace, name)]
        if namespace == self.release_namespace:
            return default_template(name)
        return None

    @property
    def knows_cluster(self) -> bool:
        return self.config_maps is not None


def config_map_ref(
    namespace: str, config: str | None, *, default: str, ctx: ValidationContext
) -> tuple[str, str]:
    """The ``(namespace, name)`` a ``config`` field resolves to (its default template if empty)."""
    if config:
        return (namespace, config)
    return (ctx.release_namespace, default)


TUNING_TEMPLATES: Final = {
    "lora": DEFAULT_LORA_CONFIG_TEMPLATE,
    "qlora": DEFAULT_QLORA_CONFIG_TEMPLATE,
}
INFERENCE_TEMPLATE: Final = DEFAULT_INFERENCE_CONFIG_TEMPLATE
