"""Materialise adapters at their strength: LoRA B scaled by the strength, adapters concatenated.

A LoRA adapter adds ``s * B @ A`` to a weight (``s = alpha / r``, or ``alpha / sqrt(r)`` with
rsLoRA). Serving it at strength ``w`` means adding ``w * s * B @ A``: we write a copy whose B is
``w * s * B`` and whose config has ``lora_alpha == r`` (scaling 1). Several adapters combine
exactly by concatenation along the rank ("cat"): A stacked row-wise and the scaled Bs column-wise
give ``sum_i w_i s_i B_i @ A_i``. Modules an adapter does not touch get zero blocks, so every
module has the same total rank. Strength 0 gives B = 0: exactly the base model. Both backends load
these copies (PEFT for transformers, ``LoRARequest`` for vLLM), which is how strength is honoured
on vLLM, whose own LoRA path has no strength.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from kaito_runtime.inference._adapters import ADAPTER_CONFIG, AdapterSpec
from kaito_runtime.inference._errors import ConfigError

__all__ = ("AdapterWeights", "PreparedAdapters", "prepare_adapters")

WEIGHTS_FILE = "adapter_model.safetensors"
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.(?P<adapter>[^.]+))?\.weight$")


@attrs.frozen
class AdapterWeights:
    """A directory holding a PEFT LoRA adapter ready to load, and its (uniform) rank."""

    path: Path
    rank: int


@attrs.frozen
class PreparedAdapters:
    """What the engines load: one copy per named adapter, and the combination for the default.

    ``default`` is ``None`` when no adapter has a non-zero strength (the default is the base).
    """

    by_name: dict[str, AdapterWeights]
    default: AdapterWeights | None

    @property
    def max_rank(self) -> int:
        """Return the largest rank any prepared adapter has (0 without adapters)."""
        ranks = [a.rank for a in self.by_name.values()]
        if self.default is not None:
            ranks.append(self.default.rank)
        return max(ranks, default=0)


@attrs.frozen
class _LoadedAdapter:
    name: str
    config: dict[str, Any]
    # module path -> (A [r, in], B [out, r] already multiplied by strength * scaling)
    modules: dict[str, tuple[Any, Any]]
    rank: int


def _pattern_value(patterns: dict[str, Any], module: str) -> Any | None:
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return None


def _load(spec: AdapterSpec) -> _LoadedAdapter:
    import torch
    from safetensors.torch import load_file

    config = json.loads((spec.path / ADAPTER_CONFIG).read_text())
    where = f"adapter {spec.name!r} ({spec.path})"
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(
            where, config.get("peft_type"), "only LoRA adapters are served", fix="train with LoRA"
        )
    for feature in ("use_dora", "lora_bias"):
        if config.get(feature):
            raise ConfigError(
                where,
                f"{feature}=true",
                "not supported for serving with a strength",
                fix=f"train without {feature}",
            )
    if config.get("modules_to_save"):
        raise ConfigError(
            where,
            f"modules_to_save={config['modules_to_save']}",
            "full-module copies cannot be weighted by a strength",
            fix="train without modules_to_save",
        )
    weights_path = spec.path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ConfigError(
            where,
            str(spec.path),
            f"{WEIGHTS_FILE} is missing",
            fix="save the adapter with PEFT's save_pretrained (safetensors)",
        )
    tensors = load_file(str(weights_path))
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise ConfigError(
                where,
                key,
                "a tensor that is not a LoRA A/B matrix",
                fix="serve plain LoRA adapters (no embedding LoRA or extra weights)",
            )
        pairs.setdefault(match["module"], {})[match["which"]] = tensor
    modules: dict[str, tuple[Any, Any]] = {}
    rank = 0
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise ConfigError(where, module, "has only one of lora_A/lora_B", fix="re-save it")
        a = pair["A"].to(torch.float32)
        b = pair["B"].to(torch.float32)
        r = int(a.shape[0])
        r_default = int(config.get("r", r))
        alpha = _pattern_value(config.get("alpha_pattern") or {}, module)
        if alpha is None:
            alpha = config.get("lora_alpha", r_default)
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        modules[module] = (a, b * (scale * spec.strength))
        rank = max(rank, r)
    return _LoadedAdapter(name=spec.name, config=config, modules=modules, rank=rank)


def _write(adapters: Sequence[_LoadedAdapter], out: Path) -> AdapterWeights:
    import torch
    from safetensors.torch import save_file

    total = sum(a.rank for a in adapters)
    module_names = sorted({m for a in adapters for m in a.modules})
    tensors: dict[str, Any] = {}
    for module in module_names:
        blocks_a, blocks_b = [], []
        present = [a.modules[module] for a in adapters if module in a.modules]
        shape_in, shape_out = present[0][0].shape[1], present[0][1].shape[0]
        for adapter in adapters:
            a_block = torch.zeros(adapter.rank, shape_in)
            b_block = torch.zeros(shape_out, adapter.rank)
            if module in adapter.modules:
                a, b = adapter.modules[module]
                a_block[: a.shape[0]] = a
                b_block[:, : b.shape[1]] = b
            blocks_a.append(a_block)
            blocks_b.append(b_block)
        tensors[f"{module}.lora_A.weight"] = torch.cat(blocks_a, dim=0).contiguous()
        tensors[f"{module}.lora_B.weight"] = torch.cat(blocks_b, dim=1).contiguous()
    config = dict(adapters[0].config)
    targets = sorted({m.rsplit(".", 1)[-1] for m in module_names})
    config.update(
        r=total,
        lora_alpha=total,
        use_rslora=False,
        rank_pattern={},
        alpha_pattern={},
        target_modules=targets,
        lora_dropout=0.0,
        inference_mode=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS_FILE))
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    return AdapterWeights(path=out, rank=total)


def prepare_adapters(specs: Sequence[AdapterSpec], workdir: Path) -> PreparedAdapters:
    """Write the strength-scaled copy of each adapter, and their combination, under ``workdir``.

    An adapter at strength 1 served alone is used from its own directory, unchanged. Blocking
    (reads and writes weights): call it from a worker thread.

    Raises:
        ConfigError: an adapter uses a feature that cannot be weighted (DoRA, modules_to_save).
    """
    loaded = {spec.name: _load(spec) for spec in specs}
    by_name: dict[str, AdapterWeights] = {}
    for spec in specs:
        adapter = loaded[spec.name]
        if spec.strength == 1.0:
            by_name[spec.name] = AdapterWeights(path=spec.path, rank=adapter.rank)
        else:
            by_name[spec.name] = _write([adapter], workdir / spec.name)
    active = [s for s in specs if s.strength > 0.0]
    default: AdapterWeights | None
    if not active:
        default = None
    elif len(active) == 1:
        default = by_name[active[0].name]
    else:
        default = _write([loaded[s.name] for s in active], workdir / "__combined__")
    return PreparedAdapters(by_name=by_name, default=default)
