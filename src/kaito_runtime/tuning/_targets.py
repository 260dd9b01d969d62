"""LoRA target modules: check the names against the model, map fused projections.

Runtime layer (tuning Job). PEFT silently skips target names a model lacks as long as one name
matches, so upstream's Phi-3 default (``q_proj,k_proj,v_proj,...``) adapts only ``o_proj`` and
``down_proj`` of Phi-3, whose attention and MLP projections are fused (``qkv_proj``,
``gate_up_proj``). Here every requested name must exist; a separate projection the model fuses is
mapped to the fused module (documented in docs/runtime-tuning.md), and any other unknown name is
an error listing the model's linear layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog

from kaito_runtime.tuning._termination import ConfigError

__all__ = ("FUSED_ALIASES", "resolve_target_modules")

log = structlog.get_logger(__name__)

# Separate projection -> the fused module that holds it (Phi-3, Falcon-style attention).
FUSED_ALIASES: dict[str, tuple[str, ...]] = {
    "q_proj": ("qkv_proj", "query_key_value"),
    "k_proj": ("qkv_proj", "query_key_value"),
    "v_proj": ("qkv_proj", "query_key_value"),
    "gate_proj": ("gate_up_proj",),
    "up_proj": ("gate_up_proj",),
}


def _leaf_names(module_names: Iterable[str]) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name in module_names if name})


def resolve_target_modules(
    requested: Sequence[str] | str | None, linear_modules: Iterable[str]
) -> list[str] | str | None:
    """Return the target modules to give PEFT for a model with ``linear_modules``.

    ``requested`` None (PEFT's per-architecture default) and strings (a regular expression or
    ``all-linear``) pass through unchanged. A list is checked name by name.
    """
    if requested is None or isinstance(requested, str):
        return requested
    leaves = _leaf_names(linear_modules)
    resolved: list[str] = []
    unknown: list[str] = []
    for name in requested:
        if name in leaves:
            chosen = name
        else:
            fused = next((f for f in FUSED_ALIASES.get(name, ()) if f in leaves), None)
            if fused is None:
                unknown.append(name)
                continue
            log.info("lora_target_module_mapped", requested=name, target=fused)
            chosen = fused
        if chosen not in resolved:
            resolved.append(chosen)
    if unknown:
        raise ConfigError(
            f"LoraConfig.target_modules names {', '.join(unknown)}, which the model does not "
            f"have; its linear layers are: {', '.join(leaves)}; fix target_modules in the tuning "
            "ConfigMap (or DEFAULT_TARGET_MODULES)"
        )
    return resolved
