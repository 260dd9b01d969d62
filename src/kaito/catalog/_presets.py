"""The preset model catalog: every preset in the reference with its sizing facts.

API layer (pure data). Sizes are GiB. ``total_gpu_memory`` is the inference requirement the
webhook compares with ``count x node GPU memory``; ``model_size`` is the safetensors size the vLLM
node estimator uses; ``kv_bytes_per_token`` is the KV-cache cost of one token across all layers
(``2 x layers x kv_heads x head_dim x bytes``) for the estimator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Final

import attrs

__all__ = ("DEFAULT_DISK_GIB", "Preset", "PresetCatalog", "disk_requirement", "preset_catalog")

DEFAULT_DISK_GIB: Final = 1024.0
HF_TOKEN_KEY: Final = "HF_TOKEN"


#: Disk beyond the weights (upstream's generator: ``SystemFileDiskSizeGiB``).
_SYSTEM_DISK_GIB: Final = 80


def disk_requirement(model_size_gib: float) -> float:
    """Upstream v0.12's disk rule for catalog models (the generator's ``calculateStorageSize``):
    the weights plus 80 GiB, whole GiB (rounded down). Used for the node's disk and the NVMe
    weights volume."""
    return float(math.floor(model_size_gib + _SYSTEM_DISK_GIB))


@attrs.frozen
class Preset:
    """One preset model and what it needs to run (and to tune)."""

    name: str
    model_id: str
    family: str
    disk: float
    gpu_count: int
    total_gpu_memory: float
    per_gpu_memory: float
    dtype: str
    #: Safetensors size in GiB (the vLLM estimator's input); None where the reference has none.
    model_size: float | None
    #: Model context length (ModelTokenLimit); None where unknown.
    token_limit: int | None
    tag: str
    tuning: bool = False
    #: TotalSafeTensorFileSize for tuning (GPU memory the tuning Job needs), GiB.
    tuning_memory: float | None = None
    #: Whether vLLM may spread the model over several nodes. Upstream v0.12 serves every catalog
    #: model as a vLLM-compatible model, whose ``SupportDistributedInference`` is true.
    distributed: bool = True
    transformers: bool = True
    vllm: bool = True
    vllm_lora: bool = True
    download_auth_required: bool = False
    deprecated: bool = False
    kv_bytes_per_token: int | None = None
    trust_remote_code: bool = False
    #: Weight quantization (model_catalog.yaml's ``quantMethod``); vLLM then picks the dtype.
    quant_method: str | None = None

    @property
    def per_gpu(self) -> float:
        return self.total_gpu_memory / max(self.gpu_count, 1)

    @property
    def runtimes(self) -> tuple[str, ...]:
        out = []
        if self.vllm:
            out.append("vllm")
        if self.transformers:
            out.append("transformers")
        return tuple(out)


def _kv(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int = 2) -> int:
    return 2 * layers * kv_heads * head_dim * dtype_bytes


_PHI3_MINI_KV = _kv(32, 32, 96)
_PHI3_MEDIUM_KV = _kv(40, 10, 128)
_LLAMA8B_KV = _kv(32, 8, 128)

_LISTED: Final = (
    # Falcon: listed in supported_models.yaml; vLLM cannot apply LoRA to it.
    Preset("falcon-7b", "tiiuae/falcon-7b", "falcon", 90, 1, 14, 0, "bfloat16", None, 2048,
           "0.2.0", tuning=True, tuning_memory=16, vllm_lora=False,
           kv_bytes_per_token=_kv(32, 1, 64)),
    Preset("falcon-7b-instruct", "tiiuae/falcon-7b-instruct", "falcon", 90, 1, 14, 0, "bfloat16",
           None, 2048, "0.2.0", vllm_lora=False, kv_bytes_per_token=_kv(32, 1, 64)),
    Preset("falcon-40b", "tiiuae/falcon-40b", "falcon", 280, 2, 90, 0, "bfloat16", None, 2048,
           "0.2.0", tuning=True, tuning_memory=90, vllm_lora=False,
           kv_bytes_per_token=_kv(60, 8, 64)),
    Preset("falcon-40b-instruct", "tiiuae/falcon-40b-instruct", "falcon", 280, 2, 90, 0, "bfloat16",
           None, 2048, "0.2.0", vllm_lora=False, kv_bytes_per_token=_kv(60, 8, 64)),
    Preset("mistral-7b", "mistralai/Mistral-7B-v0.3", "mistral", 90, 1, 14, 0, "bfloat16", 13.50,
           32768, "0.2.0", tuning=True, tuning_memory=16, kv_bytes_per_token=_kv(32, 8, 128)),
    Preset("mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.3", "mistral", 90, 1, 16, 0,
           "bfloat16", 13.50, 32768, "0.2.0", kv_bytes_per_token=_kv(32, 8, 128)),
    Preset("phi-2", "microsoft/phi-2", "phi", 80, 1, 12, 0, "float16", None, 2048, "0.0.0",
           tuning=True, deprecated=True, kv_bytes_per_token=_kv(32, 32, 80)),
    Preset("phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct", "phi", 80, 1, 9, 0, "auto",
           7.12, 4096, "0.2.0", tuning=True, tuning_memory=72, kv_bytes_per_token=_PHI3_MINI_KV,
           trust_remote_code=True),
    Preset("phi-3-mini-128k-instruct", "microsoft/Phi-3-mini-128k-instruct", "phi", 80, 1, 9, 0,
           "auto", 7.12, 131072, "0.2.0", tuning=True, tuning_memory=72,
           kv_bytes_per_token=_PHI3_MINI_KV, trust_remote_code=True),
    Preset("phi-3-medium-4k-instruct", "microsoft/Phi-3-medium-4k-instruct", "phi", 120, 1, 28, 0,
           "auto", 26.00, 4096, "0.2.0", tuning=True, tuning_memory=80,
           kv_bytes_per_token=_PHI3_MEDIUM_KV, trust_remote_code=True),
    Preset("phi-3-medium-128k-instruct", "microsoft/Phi-3-medium-128k-instruct", "phi", 120, 1, 28,
           0, "auto", 26.00, 131072, "0.2.0", tuning=True, tuning_memory=80,
           kv_bytes_per_token=_PHI3_MEDIUM_KV, trust_remote_code=True),
    Preset("phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct", "phi", 70, 1, 8, 0, "auto",
           7.12, 131072, "0.2.0", tuning=True, tuning_memory=72, kv_bytes_per_token=_PHI3_MINI_KV,
           trust_remote_code=True),
    Preset("phi-4", "microsoft/phi-4", "phi", 150, 1, 40, 0, "auto", 27.31, 16384, "0.2.0",
           tuning=True, tuning_memory=70, kv_bytes_per_token=_kv(40, 10, 128),
           trust_remote_code=True),
    Preset("phi-4-mini-instruct", "microsoft/Phi-4-mini-instruct", "phi", 70, 1, 8, 0, "auto", 7.15,
           131072, "0.2.0", tuning=True, tuning_memory=72, kv_bytes_per_token=_kv(32, 8, 128),
           trust_remote_code=True),
    Preset("qwen2.5-coder-7b-instruct", "Qwen/Qwen2.5-Coder-7B-Instruct", "qwen", 110, 1, 24, 0,
           "bfloat16", 14.19, 32768, "0.2.0", tuning=True, tuning_memory=24,
           kv_bytes_per_token=_kv(28, 4, 128)),
    Preset("qwen2.5-coder-32b-instruct", "Qwen/Qwen2.5-Coder-32B-Instruct", "qwen", 230, 1, 70, 0,
           "bfloat16", 61.03, 32768, "0.2.0", tuning=True, tuning_memory=140,
           kv_bytes_per_token=_kv(64, 8, 128)),
    Preset("deepseek-r1-distill-llama-8b", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseek",
           90, 1, 16.5, 0, "bfloat16", 14.96, 131072, "0.2.0", kv_bytes_per_token=_LLAMA8B_KV),
    Preset("deepseek-r1-distill-qwen-14b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "deepseek",
           120, 1, 25.7, 0, "bfloat16", 27.51, 131072, "0.2.0", kv_bytes_per_token=_kv(48, 8, 128)),
    Preset("deepseek-r1-0528", "deepseek-ai/DeepSeek-R1-0528", "deepseek", 800, 1, 960, 0,
           "bfloat16", 641.30, 163840, "0.0.1", distributed=True, transformers=False,
           kv_bytes_per_token=_kv(61, 1, 288), quant_method="fp8"),
    Preset("deepseek-v3-0324", "deepseek-ai/DeepSeek-V3-0324", "deepseek", 800, 1, 960, 0,
           "bfloat16", 641.30, 163840, "0.0.1", distributed=True, transformers=False,
           kv_bytes_per_token=_kv(61, 1, 288), quant_method="fp8"),
    Preset("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "llama", 110, 1, 22, 0,
           "bfloat16", 14.96, 131072, "0.2.0", distributed=True, download_auth_required=True,
           kv_bytes_per_token=_LLAMA8B_KV),
    Preset("llama-3.3-70b-instruct", "meta-llama/Llama-3.3-70B-Instruct", "llama", 220, 4, 320, 80,
           "bfloat16", 131.42, 131072, "0.0.1", distributed=True, download_auth_required=True,
           kv_bytes_per_token=_kv(80, 8, 128)),
    Preset("gemma-3-4b-instruct", "google/gemma-3-4b-it", "gemma", disk_requirement(8.01), 1, 8.01,
           0, "auto", 8.01, 131072, "0.0.1", transformers=False,
           kv_bytes_per_token=_kv(34, 4, 256)),
    Preset("gemma-3-27b-instruct", "google/gemma-3-27b-it", "gemma", disk_requirement(51.10), 1,
           51.10, 0, "auto", 51.10, 131072, "0.0.1", distributed=True, transformers=False,
           kv_bytes_per_token=_kv(62, 16, 128)),
    Preset("gpt-oss-20b", "openai/gpt-oss-20b", "gpt-oss", disk_requirement(25.63), 1, 25.63, 0,
           "auto", 25.63, 131072, "0.0.2", transformers=False, kv_bytes_per_token=_kv(24, 8, 64),
           quant_method="mxfp4"),
    Preset("gpt-oss-120b", "openai/gpt-oss-120b", "gpt-oss", disk_requirement(121.54), 1, 121.54,
           0, "auto", 121.54, 131072, "0.0.1", distributed=True, transformers=False,
           kv_bytes_per_token=_kv(36, 8, 64), quant_method="mxfp4"),
    Preset("ministral-3-3b-instruct", "mistralai/Ministral-3-3B-Instruct-2512", "mistral",
           disk_requirement(4.35), 1, 4.35, 0, "auto", 4.35, 262144, "0.0.1", transformers=False,
           quant_method="fp8"),
    Preset("ministral-3-8b-instruct", "mistralai/Ministral-3-8B-Instruct-2512", "mistral",
           disk_requirement(9.70), 1, 9.70, 0, "auto", 9.70, 262144, "0.0.1", transformers=False,
           quant_method="fp8"),
    Preset("ministral-3-14b-instruct", "mistralai/Ministral-3-14B-Instruct-2512", "mistral",
           disk_requirement(14.65), 1, 14.65, 0, "auto", 14.65, 262144, "0.0.1",
           transformers=False, quant_method="fp8"),
    Preset("mistral-large-3-675b-instruct", "mistralai/Mistral-Large-3-675B-Instruct-2512",
           "mistral", disk_requirement(634.70), 1, 634.70, 0, "bfloat16", 634.70, 294912, "0.0.1",
           distributed=True, transformers=False, quant_method="float-quantized"),
)  # fmt: skip

#: The catalog. Presets with a known weight size need upstream v0.12's disk (the figures above
#: are v0.6's model.go values, kept for the presets v0.12 has no size for).
_PRESETS: Final = tuple(
    p if p.model_size is None else attrs.evolve(p, disk=disk_requirement(p.model_size))
    for p in _LISTED
)


@attrs.frozen
class PresetCatalog:
    """Lookup of presets by short name or HuggingFace id (case-insensitive)."""

    presets: tuple[Preset, ...]

    def __iter__(self) -> Iterator[Preset]:
        return iter(self.presets)

    def get(self, name: str) -> Preset | None:
        """Return the preset named ``name`` (short name or HF id), or None."""
        wanted = name.strip().lower()
        for preset in self.presets:
            if wanted in (preset.name, preset.model_id.lower()):
                return preset
        return None

    def names(self, *, include_deprecated: bool = False) -> list[str]:
        return [p.name for p in self.presets if include_deprecated or not p.deprecated]

    def tunable(self) -> list[str]:
        return [p.name for p in self.presets if p.tuning and not p.deprecated]


_CATALOG: Final = PresetCatalog(_PRESETS)


def preset_catalog() -> PresetCatalog:
    """The built-in preset catalog."""
    return _CATALOG
