"""Inference server overhead: our HTTP server against the same engine called in-process.

For each backend, one model is served twice: by ``python -m kaito_runtime.inference`` (a real
uvicorn process, streamed over loopback HTTP with server-sent events) and by the same engine
opened in this process and driven through ``Engine.generate`` directly. Both get the same text
prompt and produce exactly ``TOKENS`` tokens greedily (``min_tokens`` = ``max_tokens``); runs
alternate between the two, after a warm-up, and the median of ``RUNS`` is reported.

- tokens/s: generated tokens divided by the request's wall time, ratio = ours / baseline.
- time to first token: until the first non-empty text, ratio = baseline / ours.
So a ratio of 1.0 means no overhead, and 0.9 means 10 % slower.

CPU (default): a 30M-parameter random-weight Phi-3-architecture model (``CPU_MODEL``). GPU
(``KAITO_BENCH_GPU=1`` with CUDA): a Phi-3-mini-sized model (3.8B parameters, bfloat16) on
transformers, and on vLLM too when it is installed.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import httpx

from kaito_runtime.inference import (
    Engine,
    GenerationRequest,
    InferenceSettings,
    SamplingOptions,
)

SEED = 0
RUNS = int(os.environ.get("KAITO_BENCH_RUNS", "7"))
WARMUP = 2
TOKENS = int(os.environ.get("KAITO_BENCH_TOKENS", "64"))
PROMPT = " ".join(
    f"the operator schedules workspace number {i} and then answers" for i in range(12)
)
# About 30M parameters: small enough for 2 CPU cores, large enough that a request does real work
# (a 4-layer, 256-wide model spends ~25 ms on the first token, so fixed costs dominate it).
CPU_MODEL = {"hidden_size": 512, "num_heads": 8, "num_layers": 8, "intermediate_size": 1376}
PRESET_PHI3_MINI = {
    "hidden_size": 3072,
    "num_heads": 32,
    "num_layers": 32,
    "intermediate_size": 8192,
    "max_positions": 4096,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Sample:
    def __init__(self, ttft: float, tokens_per_s: float) -> None:
        self.ttft = ttft
        self.tokens_per_s = tokens_per_s


async def _direct(engine: Engine, index: int) -> _Sample:
    ids = engine.encode(PROMPT)
    request = GenerationRequest(
        request_id=f"bench-{index}",
        prompt_token_ids=tuple(ids),
        sampling=SamplingOptions(max_tokens=TOKENS, min_tokens=TOKENS, temperature=0.0),
    )
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for delta in engine.generate(request):
        tokens += delta.token_count
        if first is None and delta.text:
            first = time.perf_counter()
    elapsed = time.perf_counter() - started
    return _Sample((first or time.perf_counter()) - started, tokens / elapsed)


async def _served(client: httpx.AsyncClient, model: str) -> _Sample:
    body = {
        "model": model,
        "prompt": PROMPT,
        "max_tokens": TOKENS,
        "min_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(f"server stream failed: {event}")
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            elif first is None and event["choices"] and event["choices"][0]["text"]:
                first = time.perf_counter()
    elapsed = time.perf_counter() - started
    return _Sample((first or time.perf_counter()) - started, tokens / elapsed)


def _start_server(model: Path, backend: str, port: int, extra: list[str], log: Path) -> Any:
    command = [
        sys.executable, "-m", "kaito_runtime.inference",
        "--model", str(model), "--served-model-name", "bench",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend", backend, "--adapters-dir", "",
        "--max-tokens-limit", str(max(TOKENS, 16)),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "KAITO_LOG_LEVEL": "warning"}
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


async def _wait_healthy(client: httpx.AsyncClient, proc: Any, log: Path) -> None:
    with anyio.fail_after(1800):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bench server exited; its log is {log}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await anyio.sleep(0.2)


async def _compare(
    label: str,
    *,
    model: Path,
    backend: str,
    opener: Callable[[InferenceSettings], AbstractAsyncContextManager[Engine]],
    settings: InferenceSettings,
    server_flags: list[str],
) -> list[str]:
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="kaito-bench-")) / "server.log"
    proc = _start_server(model, backend, port, server_flags, log)
    ours: list[_Sample] = []
    base: list[_Sample] = []
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client,
            opener(settings) as engine,
        ):
            await _wait_healthy(client, proc, log)
            runs: list[tuple[Callable[[], Awaitable[_Sample]], list[_Sample]]] = [
                (lambda: _served(client, "bench"), ours),
                (lambda: _direct(engine, len(base)), base),
            ]
            for _ in range(WARMUP):
                for call, _sink in runs:
                    await call()
            for i in range(RUNS):
                order = runs if i % 2 == 0 else list(reversed(runs))
                for call, sink in order:
                    sink.append(await call())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    ours_tps = statistics.median(s.tokens_per_s for s in ours)
    base_tps = statistics.median(s.tokens_per_s for s in base)
    ours_ttft = statistics.median(s.ttft for s in ours) * 1000
    base_ttft = statistics.median(s.ttft for s in base) * 1000
    what = f"in-process {backend} engine"
    return [
        f"inference_tokens_per_s[{label}]: ours={ours_tps:.1f} tok/s "
        f"baseline[{what}]={base_tps:.1f} tok/s ratio={ours_tps / base_tps:.2f}",
        f"inference_ttft[{label}]: ours={ours_ttft:.1f} ms "
        f"baseline[{what}]={base_ttft:.1f} ms ratio={base_ttft / ours_ttft:.2f} (baseline/ours)",
    ]


def _build(directory: Path, gpu: bool) -> Path:
    from tests.support.tiny_model import build_tiny_model

    dims = PRESET_PHI3_MINI if gpu else CPU_MODEL
    return build_tiny_model(directory, seed=SEED, dtype="bfloat16" if gpu else "float32", **dims)


async def _main() -> list[str]:
    import torch

    torch.manual_seed(SEED)
    gpu = os.environ.get("KAITO_BENCH_GPU") == "1" and torch.cuda.is_available()
    lines = [f"# inference bench: {RUNS} runs, {TOKENS} tokens, gpu={gpu}"]
    with tempfile.TemporaryDirectory(prefix="kaito-bench-model-") as scratch:
        model = _build(Path(scratch) / "model", gpu)
        from kaito_runtime.inference.backends.transformers_engine import (
            open_transformers_engine,
        )

        settings = InferenceSettings(
            model=str(model), served_model_name="bench", backend="transformers"
        )
        label = "transformers-gpu-phi3-mini-size" if gpu else "transformers-cpu-30M"
        lines += await _compare(
            label,
            model=model,
            backend="transformers",
            opener=open_transformers_engine,
            settings=settings,
            server_flags=[],
        )
        if gpu and _has_vllm():
            from kaito_runtime.inference.backends.vllm_engine import open_vllm_engine

            vllm_settings = InferenceSettings(
                model=str(model),
                served_model_name="bench",
                backend="vllm",
                max_model_len=2048,
                gpu_memory_utilization=0.4,
            )
            flags = ["--max-model-len", "2048", "--gpu-memory-utilization", "0.4"]
            lines += await _compare(
                "vllm-gpu-phi3-mini-size",
                model=model,
                backend="vllm",
                opener=open_vllm_engine,
                settings=vllm_settings,
                server_flags=flags,
            )
    return lines


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def run() -> list[str]:
    """Run the comparison and return the report lines."""
    return anyio.run(_main)
