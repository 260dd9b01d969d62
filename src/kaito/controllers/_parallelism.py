"""How vLLM spreads a model over GPUs and nodes: upstream KAITO's ``configureParallelism``.

Controller layer (a pure function). Three tiers, decided from the SKU (GPUs per node, their
memory) and the model's size:

1. data parallel: several GPUs and the model under half of one (``size x GPUs x 2 < node GPU
   memory``), on one node: ``--data-parallel-size=<GPUs> --tensor-parallel-size=1``;
2. tensor parallel: ``--tensor-parallel-size=<GPUs per node>`` (one GPU: 1);
3. several nodes: tensor parallel within each node, ``--pipeline-parallel-size=<nodes>`` and
   ``--distributed-executor-backend=ray`` across them.
"""

from __future__ import annotations

import attrs

from kaito.catalog import SKU, Preset

__all__ = ("Parallelism", "vllm_parallelism")


@attrs.frozen
class Parallelism:
    """vLLM's parallelism degrees (``None``: the flag is not rendered)."""

    tensor: int
    data: int | None = None
    pipeline: int | None = None
    executor: str | None = None

    @property
    def multi_node(self) -> bool:
        return self.pipeline is not None and self.pipeline > 1


def _fits_one_gpu(preset: Preset | None, sku: SKU) -> bool:
    """Upstream's ``modelFitsOnSingleGPU``: several GPUs and the weights under half of one."""
    if sku.gpu_count <= 1 or preset is None or preset.model_size is None:
        return False
    return preset.model_size * sku.gpu_count * 2 < sku.gpu_memory


def vllm_parallelism(preset: Preset | None, sku: SKU | None, nodes: int) -> Parallelism:
    """The parallelism of ``preset`` on ``nodes`` nodes of ``sku`` (upstream's three tiers)."""
    gpus = sku.gpu_count if sku is not None else 1
    multi_node = nodes > 1
    if sku is not None and not multi_node and _fits_one_gpu(preset, sku):
        return Parallelism(tensor=1, data=gpus)
    if multi_node:
        return Parallelism(tensor=gpus, pipeline=nodes, executor="ray")
    return Parallelism(tensor=gpus)
