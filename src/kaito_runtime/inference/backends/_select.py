"""Choosing and opening the engine backend."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import structlog

from kaito_runtime.inference._engine import Engine
from kaito_runtime.inference._settings import InferenceSettings

__all__ = ("open_engine", "resolve_backend")

log = structlog.get_logger(__name__)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(settings: InferenceSettings) -> Literal["vllm", "transformers"]:
    """Return the backend to use: ``auto`` means vLLM on a GPU when installed, else transformers."""
    if settings.backend != "auto":
        return settings.backend
    if importlib.util.find_spec("vllm") is not None and _cuda_available():
        return "vllm"
    return "transformers"


@asynccontextmanager
async def open_engine(settings: InferenceSettings) -> AsyncIterator[Engine]:
    """Load the model with the chosen backend; unload it on exit (the engine's lifetime)."""
    if resolve_backend(settings) == "vllm":
        from kaito_runtime.inference.backends._vllm_engine import open_vllm_engine

        async with open_vllm_engine(settings) as vllm_engine:
            yield vllm_engine
    else:
        from kaito_runtime.inference.backends._transformers_engine import (
            open_transformers_engine,
        )

        sizes = {
            "tensor_parallel_size": settings.tensor_parallel_size,
            "data_parallel_size": settings.data_parallel_size,
            "pipeline_parallel_size": settings.pipeline_parallel_size,
        }
        if any(size > 1 for size in sizes.values()):
            # One process; device_map="auto" spreads the model over the visible GPUs instead.
            log.warning("parallelism_ignored", backend="transformers", **sizes)

        async with open_transformers_engine(settings) as tf_engine:
            yield tf_engine
