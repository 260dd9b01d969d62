"""Engine backends: transformers (CPU fallback, tests) and vLLM (GPU default)."""

from __future__ import annotations

from kaito_runtime.inference.backends.select import open_engine as open_engine
from kaito_runtime.inference.backends.select import resolve_backend as resolve_backend

__all__ = ("open_engine", "resolve_backend")
