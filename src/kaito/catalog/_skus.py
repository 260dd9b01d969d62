"""GPU SKU catalogs (Azure, current and older; AWS) with GPU count and memory per node.

API layer (pure data). ``gpu_memory`` is the node's total GPU memory in GiB; per-GPU memory is the
total divided by the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import attrs

__all__ = ("SKU", "SKUCatalog", "sku_catalog")


@attrs.frozen
class SKU:
    """A GPU instance type."""

    name: str
    cloud: str
    gpu_count: int
    gpu_memory: float
    gpu_model: str
    nvme: bool = False

    @property
    def per_gpu_memory(self) -> float:
        return self.gpu_memory / self.gpu_count

    @property
    def nvidia(self) -> bool:
        return not self.gpu_model.startswith(("AMD", "Radeon", "MI", "Trainium", "Inferentia"))


def _sku(name: str, cloud: str, count: int, mem: float, model: str, nvme: bool = False) -> SKU:  # noqa: PLR0917
    return SKU(name, cloud, count, mem, model, nvme)


_AZURE: Final = (
    _sku("Standard_NV36ads_A10_v5", "azure", 1, 24, "NVIDIA A10"),
    _sku("Standard_NV72ads_A10_v5", "azure", 2, 48, "NVIDIA A10"),
    _sku("Standard_NC24ads_A100_v4", "azure", 1, 80, "NVIDIA A100 80GB", True),
    _sku("Standard_NC48ads_A100_v4", "azure", 2, 160, "NVIDIA A100 80GB", True),
    _sku("Standard_NC96ads_A100_v4", "azure", 4, 320, "NVIDIA A100 80GB", True),
    _sku("Standard_ND96asr_A100_v4", "azure", 8, 320, "NVIDIA A100 40GB"),
    _sku("Standard_ND96amsr_A100_v4", "azure", 8, 640, "NVIDIA A100 80GB", True),
    _sku("Standard_NC40ads_H100_v5", "azure", 1, 94, "NVIDIA H100 NVL", True),
    _sku("Standard_NC80adis_H100_v5", "azure", 2, 188, "NVIDIA H100 NVL", True),
    _sku("Standard_NCC40ads_H100_v5", "azure", 1, 94, "NVIDIA H100"),
    _sku("Standard_ND96isr_H100_v5", "azure", 8, 640, "NVIDIA H100", True),
    _sku("Standard_ND96isr_H200_v5", "azure", 8, 1128, "NVIDIA H200", True),
    _sku("Standard_NG32ads_V620_v1", "azure", 1, 32, "AMD Radeon PRO V620"),
    _sku("Standard_NG32adms_V620_v1", "azure", 1, 32, "AMD Radeon PRO V620"),
    # Older Azure SKUs (KAITO <= v0.4); the guide uses Standard_NC6s_v3.
    _sku("Standard_NC6s_v3", "azure", 1, 16, "NVIDIA V100"),
    _sku("Standard_NC12s_v3", "azure", 2, 32, "NVIDIA V100"),
    _sku("Standard_NC24s_v3", "azure", 4, 64, "NVIDIA V100"),
    _sku("Standard_NC24rs_v3", "azure", 4, 64, "NVIDIA V100"),
    _sku("Standard_NC4as_T4_v3", "azure", 1, 16, "NVIDIA T4"),
    _sku("Standard_NC8as_T4_v3", "azure", 1, 16, "NVIDIA T4"),
    _sku("Standard_NC16as_T4_v3", "azure", 1, 16, "NVIDIA T4"),
    _sku("Standard_NC64as_T4_v3", "azure", 4, 64, "NVIDIA T4"),
    _sku("Standard_NV6", "azure", 1, 8, "NVIDIA M60"),
    _sku("Standard_NV12", "azure", 2, 16, "NVIDIA M60"),
    _sku("Standard_NV24", "azure", 4, 32, "NVIDIA M60"),
    _sku("Standard_NV12s_v3", "azure", 1, 8, "NVIDIA M60"),
    _sku("Standard_NV24s_v3", "azure", 2, 16, "NVIDIA M60"),
    _sku("Standard_NV48s_v3", "azure", 4, 32, "NVIDIA M60"),
    _sku("Standard_NV32as_v4", "azure", 1, 16, "AMD MI25"),
)

# Azure Arc (edge) SKUs.
_ARC: Final = (
    _sku("Standard_NC4_A2", "arc", 1, 16, "NVIDIA A2"),
    _sku("Standard_NC8_A2", "arc", 1, 16, "NVIDIA A2"),
    _sku("Standard_NC16_A2", "arc", 2, 32, "NVIDIA A2"),
    _sku("Standard_NC32_A2", "arc", 2, 32, "NVIDIA A2"),
    _sku("Standard_NC4_A16", "arc", 1, 16, "NVIDIA A16"),
    _sku("Standard_NC8_A16", "arc", 1, 16, "NVIDIA A16"),
    _sku("Standard_NC16_A16", "arc", 2, 32, "NVIDIA A16"),
    _sku("Standard_NC32_A16", "arc", 2, 32, "NVIDIA A16"),
)


def _aws_family(prefix: str, model: str) -> tuple[SKU, ...]:
    shapes = (
        ("xlarge", 1, 24), ("2xlarge", 1, 24), ("4xlarge", 1, 24), ("8xlarge", 1, 24),
        ("16xlarge", 1, 24), ("12xlarge", 4, 96), ("24xlarge", 4, 96), ("48xlarge", 8, 192),
    )  # fmt: skip
    return tuple(_sku(f"{prefix}.{size}", "aws", n, mem, model) for size, n, mem in shapes)


_AWS: Final = (
    _sku("p4d.24xlarge", "aws", 8, 320, "NVIDIA A100 40GB", True),
    _sku("p4de.24xlarge", "aws", 8, 640, "NVIDIA A100 80GB", True),
    _sku("p5.48xlarge", "aws", 8, 640, "NVIDIA H100", True),
    _sku("p5e.48xlarge", "aws", 8, 1128, "NVIDIA H200", True),
    _sku("p5en.48xlarge", "aws", 8, 1128, "NVIDIA H200", True),
    *_aws_family("g6", "NVIDIA L4"),
    _sku("gr6.4xlarge", "aws", 1, 24, "NVIDIA L4"),
    _sku("gr6.8xlarge", "aws", 1, 24, "NVIDIA L4"),
    *_aws_family("g5", "NVIDIA A10G"),
    _sku("g4ad.xlarge", "aws", 1, 8, "AMD Radeon Pro V520"),
    _sku("g4ad.2xlarge", "aws", 1, 8, "AMD Radeon Pro V520"),
    _sku("g4ad.4xlarge", "aws", 1, 8, "AMD Radeon Pro V520"),
    _sku("g4ad.8xlarge", "aws", 2, 16, "AMD Radeon Pro V520"),
    _sku("g4ad.16xlarge", "aws", 4, 32, "AMD Radeon Pro V520"),
    _sku("trn1.2xlarge", "aws", 1, 32, "Trainium"),
    _sku("trn1.32xlarge", "aws", 16, 512, "Trainium"),
    _sku("trn1n.32xlarge", "aws", 16, 512, "Trainium"),
    _sku("inf2.xlarge", "aws", 1, 32, "Inferentia2"),
    _sku("inf2.8xlarge", "aws", 1, 32, "Inferentia2"),
    _sku("inf2.24xlarge", "aws", 6, 192, "Inferentia2"),
    _sku("inf2.48xlarge", "aws", 12, 384, "Inferentia2"),
)


@attrs.frozen
class SKUCatalog:
    """GPU SKUs of every cloud, looked up by exact name (case-insensitive)."""

    skus: tuple[SKU, ...]

    def __iter__(self) -> Iterator[SKU]:
        return iter(self.skus)

    def get(self, name: str) -> SKU | None:
        wanted = name.strip().lower()
        for sku in self.skus:
            if sku.name.lower() == wanted:
                return sku
        return None

    def names(self, cloud: str | None = None) -> list[str]:
        return [s.name for s in self.skus if cloud is None or s.cloud == cloud]


_CATALOG: Final = SKUCatalog(_AZURE + _ARC + _AWS)


def sku_catalog() -> SKUCatalog:
    """The built-in GPU SKU catalog."""
    return _CATALOG
