"""Engine backends: transformers (CPU fallback, tests) and vLLM (GPU default)."""

from __future__ import annotations

from kaito_runtime.inference.backends._select import open_engine as open_engine
from kaito_runtime.inference.backends._select import resolve_backend as resolve_backend
from kaito_runtime.inference.backends._transformers_engine import open_transformers_engine
from kaito_runtime.inference.backends._vllm_engine import open_vllm_engine

__all__ = (
    "open_engine",
    "open_transformers_engine",
    "open_vllm_engine",
    "resolve_backend",
)
