"""Hostile and unlucky values get a 400 in the route's error shape, never a 500 or a stall.

In-process (``httpx.ASGITransport``) over the real transformers engine and the tiny model. Each
case here was a plain-text 500 (or tens of seconds of work) before the server validated it.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kaito_runtime.inference import (
    AppState,
    ChatMessage,
    Engine,
    GenerationDelta,
    GenerationRequest,
    InferenceSettings,
    Limits,
    ModelInfo,
    build_app,
)
from kaito_runtime.inference.backends._transformers_engine import TransformersEngine
from tests.runtime.inference.conftest import SERVED_NAME

pytestmark = pytest.mark.anyio

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello kaito"}]


DEFAULT_LIMITS = Limits()


def _settings(model: Path, limits: Limits = DEFAULT_LIMITS) -> InferenceSettings:
    return InferenceSettings(
        model=str(model), served_model_name=SERVED_NAME, backend="transformers", limits=limits
    )


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kaito", timeout=120
        ) as client,
    ):
        state: AppState = app.state.kaito
        assert state.loaded is not None
        await state.loaded.wait()
        yield client


@pytest.fixture(scope="module")
async def app(tiny_model: Path) -> AsyncIterator[FastAPI]:
    application = build_app(_settings(tiny_model))
    async with _client(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kaito", timeout=120
    ) as c:
        yield c


def _vocab(app: FastAPI) -> int:
    state: AppState = app.state.kaito
    return state.holder.require().info.vocab_size


def _openai_error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    return str(error["message"])


async def test_token_ids_outside_the_vocabulary_are_a_400_naming_the_first(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    vocab = 512  # the tiny model's tokenizer and embedding agree on it
    too_big = await client.post(COMPLETIONS, json={"prompt": [5, vocab], "max_tokens": 2})
    assert _openai_error(too_big) == (
        f"prompt[1]={vocab} is out of vocabulary: token ids of this model lie in [0, {vocab - 1}]"
    )
    negative = await client.post(COMPLETIONS, json={"prompt": [-1, 5], "max_tokens": 2})
    assert "prompt[0]=-1 is out of vocabulary" in _openai_error(negative)
    huge = await client.post(COMPLETIONS, json={"prompt": [10**30], "max_tokens": 2})
    assert "is out of vocabulary" in _openai_error(huge)
    edge = await client.post(COMPLETIONS, json={"prompt": [0, vocab - 1], "max_tokens": 2})
    assert edge.status_code == 200, edge.text
    assert _vocab(app) == vocab


@pytest.mark.parametrize("seed", [2**63, 2**64, -(2**63) - 1])
async def test_a_seed_outside_64_bits_is_a_400_with_the_limit(
    client: httpx.AsyncClient, seed: int
) -> None:
    response = await client.post(CHAT, json={"messages": HELLO, "max_tokens": 2, "seed": seed})
    message = _openai_error(response)
    assert message.startswith(f"invalid request: seed={seed}: Input should be")
    assert ("9223372036854775807" if seed > 0 else "-9223372036854775808") in message


async def test_the_largest_seeds_are_served(client: httpx.AsyncClient) -> None:
    for seed in (2**63 - 1, -(2**63)):
        body = {"messages": HELLO, "max_tokens": 2, "seed": seed, "temperature": 1}
        assert (await client.post(CHAT, json=body)).status_code == 200
    legacy = {"prompt": "hi", "generate_kwargs": {"seed": 2**63, "max_new_tokens": 2}}
    refused = await client.post("/chat", json=legacy)
    assert refused.status_code == 400
    assert "generate_kwargs.seed=9223372036854775808" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("route", "raw", "field"),
    [
        pytest.param(COMPLETIONS, '{"prompt": "hi \\ud800 there"}', "prompt", id="prompt"),
        pytest.param(COMPLETIONS, '{"prompt": ["\\udfff"]}', "prompt[0]", id="prompt-list"),
        pytest.param(
            CHAT, '{"messages": [{"role": "user", "content": "a\\ud83d"}]}', "messages[0].content",
            id="content",
        ),
        pytest.param(
            CHAT,
            '{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\udc00"}]}]}',
            "messages[0].content[0].text",
            id="content-part",
        ),
        pytest.param(COMPLETIONS, '{"prompt": "hi", "stop": ["\\ud800"]}', "stop[0]", id="stop"),
        pytest.param(COMPLETIONS, '{"prompt": "hi", "model": "\\ud800"}', "model", id="model"),
    ],
)  # fmt: skip
async def test_a_lone_surrogate_is_a_400_naming_the_field(
    client: httpx.AsyncClient, route: str, raw: str, field: str
) -> None:
    response = await client.post(
        route, content=raw.encode(), headers={"content-type": "application/json"}
    )
    message = _openai_error(response)
    assert f"{field} holds a lone UTF-16 surrogate (U+" in message
    assert "send valid Unicode text" in message


async def test_surrogate_pairs_are_text_and_served(client: httpx.AsyncClient) -> None:
    raw = b'{"prompt": "kaito \\ud83d\\ude00", "max_tokens": 2}'
    response = await client.post(
        COMPLETIONS, content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


async def test_legacy_chat_refuses_a_lone_surrogate_with_a_detail(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/chat", content=b'{"prompt": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "prompt holds a lone UTF-16 surrogate" in response.json()["detail"]


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_numbers_must_be_finite(client: httpx.AsyncClient, raw: str) -> None:
    for field in ("temperature", "top_p", "repetition_penalty"):
        body = f'{{"prompt": "hi", "max_tokens": 2, "{field}": {raw}}}'.encode()
        response = await client.post(
            COMPLETIONS, content=body, headers={"content-type": "application/json"}
        )
        assert f"{field}=" in _openai_error(response)


async def test_a_repetition_penalty_that_would_overflow_the_logits_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    body = {"prompt": "hi", "max_tokens": 2, "temperature": 1, "repetition_penalty": 1e-300}
    message = _openai_error(await client.post(COMPLETIONS, json=body))
    assert message == (
        "invalid request: repetition_penalty=1e-300: Input should be greater than or equal to 0.01"
    )
    legacy = {"prompt": "hi", "generate_kwargs": {"repetition_penalty": 1e-300}}
    assert (await client.post("/chat", json=legacy)).status_code == 400


async def test_extreme_sampling_values_are_served_not_500(client: httpx.AsyncClient) -> None:
    for extra in (
        {"temperature": 1e-300},
        {"top_k": 10**30},
        {"top_k": -1},
        {"top_p": 1e-300, "temperature": 1},
        {"min_tokens": 10**30},
        {"repetition_penalty": 1e300, "temperature": 1},
    ):
        response = await client.post(COMPLETIONS, json={"prompt": "hi", "max_tokens": 2, **extra})
        assert response.status_code == 200, (extra, response.text)


async def test_more_stop_strings_than_vllm_takes_are_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        COMPLETIONS, json={"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}
    )
    assert _openai_error(response) == (
        "stop holds 5 strings; this server takes at most 4 (--max-stop-strings); send fewer"
    )
    empty = await client.post(COMPLETIONS, json={"prompt": "hi", "stop": ["a", ""]})
    assert "stop[1] is an empty string" in _openai_error(empty)


async def test_a_500_kb_stop_string_is_refused_at_once(client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await client.post(
        CHAT, json={"messages": HELLO, "max_tokens": 8, "min_tokens": 8, "stop": "x" * 500_000}
    )
    elapsed = time.perf_counter() - started
    message = _openai_error(response)
    assert message.startswith("stop='xxxxx")
    assert message.endswith(
        "(500002 characters) is longer than this server's limit of 1024 characters "
        "(--max-stop-string-chars); send a shorter stop string"
    )
    assert elapsed < 5  # was tens of seconds of generation worker time


async def test_a_500_kb_stop_string_under_a_raised_cap_costs_what_a_normal_request_does(
    tiny_model: Path,
) -> None:
    application = build_app(_settings(tiny_model, Limits(max_stop_string_chars=1_000_000)))
    async with _client(application) as client:
        body: dict[str, Any] = {"prompt": "the operator", "max_tokens": 16, "min_tokens": 16}
        body["temperature"] = 0
        plain = await client.post(COMPLETIONS, json=body)
        text = plain.json()["choices"][0]["text"]
        # The worst case: the output keeps matching the stop string's beginning to the end.
        hostile = {**body, "stop": text + "x" * 500_000}
        timings: dict[str, list[float]] = {"plain": [], "hostile": []}
        for _ in range(3):  # interleaved, so a busy moment hits both
            for name, request in (("plain", body), ("hostile", hostile)):
                started = time.perf_counter()
                response = await client.post(COMPLETIONS, json=request)
                timings[name].append(time.perf_counter() - started)
                assert response.status_code == 200
                assert response.json()["choices"][0]["text"] == text
    normal, costly = (statistics.median(timings[k]) for k in ("plain", "hostile"))
    # Before: tens of seconds (each token cost the square of the stop string's length).
    assert costly < 3 * normal + 0.5, timings


async def test_a_chat_template_that_refuses_the_messages_is_a_400(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    engine = _engine(app)
    tokenizer = engine._tokenizer
    saved = tokenizer.chat_template
    tokenizer.chat_template = "{{ raise_exception('roles must alternate user/assistant') }}"
    try:
        response = await client.post(CHAT, json={"messages": HELLO})
    finally:
        tokenizer.chat_template = saved
    assert _openai_error(response) == (
        "the model's chat template refused the messages: roles must alternate user/assistant"
    )


def _engine(app: FastAPI) -> TransformersEngine:
    state: AppState = app.state.kaito
    engine = state.holder.require()
    assert isinstance(engine, TransformersEngine)
    return engine


async def test_unknown_routes_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/embeddings", json={})
    assert _openai_error(missing, 404) == "POST /v1/embeddings is not a route of this server"
    wrong = await client.get(COMPLETIONS)
    assert _openai_error(wrong, 405) == "GET is not allowed on /v1/completions; use POST"
    assert wrong.headers["allow"] == "POST"


class _FailingEngine:
    """An engine whose generation fails: the server must still answer JSON."""

    info = ModelInfo(
        served_model_name=SERVED_NAME,
        max_model_len=64,
        adapters=(),
        backend="fake",
        vocab_size=100,
    )

    def encode(self, text: str) -> list[int]:
        return [1, 2, 3]

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        return [1, 2, 3]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "x" * len(token_ids)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        raise RuntimeError("device lost")
        yield  # an async generator

    def metrics_text(self) -> bytes:
        return b""


async def test_an_engine_failure_is_a_json_500_not_a_plain_text_page(tmp_path: Path) -> None:
    @asynccontextmanager
    async def failing(settings: InferenceSettings) -> AsyncIterator[Engine]:
        yield _FailingEngine()

    application = build_app(_settings(tmp_path), engine_opener=failing)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application, raise_app_exceptions=False),
            base_url="http://kaito",
        ) as client,
    ):
        state: AppState = application.state.kaito
        assert state.loaded is not None
        await state.loaded.wait()
        response = await client.post(COMPLETIONS, json={"prompt": "hi", "max_tokens": 2})
        legacy = await client.post(
            "/chat", json={"prompt": "hi", "generate_kwargs": {"max_new_tokens": 2}}
        )
        metrics = (await client.get("/metrics")).text
    assert _openai_error(response, 500) == (
        "the server failed on this request (RuntimeError); it is in the server log"
    )
    assert response.json()["error"]["type"] == "server_error"
    assert legacy.status_code == 500
    assert "failed on this request" in legacy.json()["detail"]
    assert 'kaito_inference_requests_total{route="/v1/completions",status="500"} 1.0' in metrics


async def test_the_openapi_document_lists_the_real_errors_and_limits(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    text = json.dumps(document)
    assert "422" not in document["paths"][COMPLETIONS]["post"]["responses"]
    assert "HTTPValidationError" not in text
    responses = document["paths"][CHAT]["post"]["responses"]
    assert set(responses) == {"200", "400", "404", "408", "413", "429", "500", "503"}
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "text/event-stream" in responses["200"]["content"]
    legacy = document["paths"]["/chat"]["post"]["responses"]["400"]
    assert legacy["content"]["application/json"]["schema"]["$ref"].endswith("/LegacyError")
    completion = document["components"]["schemas"]["CompletionRequest"]["properties"]
    assert {"type": "integer", "minimum": 1, "maximum": 4096} in completion["max_tokens"]["anyOf"]
    stop = {json.dumps(v, sort_keys=True) for v in completion["stop"]["anyOf"]}
    assert json.dumps({"type": "string", "minLength": 1, "maxLength": 1024}, sort_keys=True) in stop
    seed = completion["seed"]["anyOf"][0]
    assert (seed["minimum"], seed["maximum"]) == (-(2**63), 2**63 - 1)
    assert "9223372036854775807," in text  # an integer, not the float 9.223372036854776e+18
