"""How many nodes a Workspace runs on: ``status.targetNodeCount``, as upstream decides it.

Controller layer (a pure function). Set once and kept: the vLLM node estimator with node
auto-provisioning (the context length of the user's ConfigMap, else 2048 tokens), else
``resource.count``.
"""

from __future__ import annotations

from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.catalog import DEFAULT_MAX_MODEL_LEN, SKU, Preset, estimate_node_count

__all__ = ("target_node_count",)


def target_node_count(
    ws: Workspace,
    preset: Preset | None,
    sku: SKU | None,
    *,
    runtime: str,
    node_auto_provisioning: bool,
    max_model_len: int | None = None,
) -> int:
    """``status.targetNodeCount`` once set; else the estimator (vLLM) or ``resource.count``."""
    if ws.status and ws.status.target_node_count:
        return ws.status.target_node_count
    count = (ws.resource.count if ws.resource else None) or 1
    if (
        ws.inference is not None
        and preset is not None
        and sku is not None
        and runtime == c.RuntimeName.VLLM
        and node_auto_provisioning
    ):
        estimate = estimate_node_count(
            preset, sku, max_model_len=max_model_len or DEFAULT_MAX_MODEL_LEN
        )
        return estimate or count
    return count
