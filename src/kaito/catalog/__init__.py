"""Catalogs: preset models and GPU SKUs, and whether a preset fits an instance type.

API layer: pure data and pure functions, shared by validation, the webhook and the controllers.
"""

from __future__ import annotations

from kaito.catalog._fit import (
    DEFAULT_MAX_MODEL_LEN,
    Fit,
    check_fit,
    estimate_node_count,
    gpu_memory_utilization,
)
from kaito.catalog._presets import Preset, PresetCatalog, disk_requirement, preset_catalog
from kaito.catalog._skus import SKU, SKUCatalog, sku_catalog

__all__ = (
    "DEFAULT_MAX_MODEL_LEN",
    "SKU",
    "Fit",
    "Preset",
    "PresetCatalog",
    "SKUCatalog",
    "check_fit",
    "disk_requirement",
    "estimate_node_count",
    "gpu_memory_utilization",
    "preset_catalog",
    "sku_catalog",
)
