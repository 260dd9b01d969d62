"""Settings of the inference server: one frozen object built from flags, env and the ConfigMap."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from kaito_runtime.inference._adapters import AdapterSpec
from kaito_runtime.inference._config_file import EngineArgValue

__all__ = ("DISTRIBUTED_EXECUTOR_BACKENDS", "Backend", "InferenceSettings", "Limits")

Backend = Literal["auto", "vllm", "transformers"]
# vLLM's --distributed-executor-backend choices: worker processes on this node ("mp"), Ray
# actors across nodes ("ray"), one process ("uni"), or started by torchrun ("external_launcher").
DISTRIBUTED_EXECUTOR_BACKENDS = ("mp", "ray", "uni", "external_launcher")


@attrs.frozen
class Limits:
    """Per-request and server-wide limits: memory, time and work a request may cost.

    ``max_stop_strings`` is vLLM's ``VLLM_MAX_STOP_STRINGS`` default.
    """

    max_concurrent_requests: int = 32
    max_tokens: int = 4096
    max_body_bytes: int = 1 << 20
    retry_after_seconds: int = 1
    body_read_timeout: float = 30.0
    max_stop_strings: int = 4
    max_stop_string_chars: int = 1024


@attrs.frozen
class InferenceSettings:
    """Everything the server needs; immutable once the process has started."""

    model: str
    served_model_name: str
    host: str = "0.0.0.0"
    port: int = 5000
    backend: Backend = "auto"
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.84
    tensor_parallel_size: int = 1
    # Replicas of the model on this node's GPUs (vLLM balances requests across them).
    data_parallel_size: int = 1
    # Pipeline stages: one per node in a multi-node Workspace (with the "ray" backend).
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    trust_remote_code: bool = False
    adapters: tuple[AdapterSpec, ...] = ()
    engine_args: tuple[tuple[str, EngineArgValue], ...] = ()
    max_probe_steps: int = 6
    kv_cache_cpu_memory_utilization: float = 0.5
    limits: Limits = Limits()
    workdir: Path | None = None
    # Streamed tokens after the first are handed over at most this often (seconds): fewer
    # wake-ups of the event loop and the client per token, the first token is never delayed.
    stream_interval: float = 0.02
