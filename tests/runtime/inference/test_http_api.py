"""The HTTP surface in-process (httpx.ASGITransport) over a real transformers engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from kaito_runtime.inference import (
    AppState,
    Engine,
    InferenceSettings,
    Limits,
    build_app,
    discover_adapters,
)
from kaito_runtime.inference.backends import open_transformers_engine
from tests.runtime.inference.conftest import ADAPTER_NAME, SERVED_NAME

pytestmark = pytest.mark.anyio

LIMITS = Limits(max_concurrent_requests=2, max_tokens=64, max_body_bytes=64 * 1024)
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello kaito"}]


def _settings(model: Path, adapters_dir: Path | None = None) -> InferenceSettings:
    return InferenceSettings(
        model=str(model),
        served_model_name=SERVED_NAME,
        backend="transformers",
        adapters=discover_adapters(adapters_dir, environ={}) if adapters_dir else (),
        limits=LIMITS,
    )


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kaito", timeout=60
        ) as client,
    ):
        yield client


@pytest.fixture(scope="module")
async def app(tiny_model: Path, adapters_dir: Path) -> AsyncIterator[FastAPI]:
    application = build_app(_settings(tiny_model, adapters_dir))
    async with _running(application):
        state: AppState = application.state.kaito
        assert state.loaded is not None
        await state.loaded.wait()
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kaito", timeout=60
    ) as c:
        yield c


def _engine(app: FastAPI) -> Engine:
    state: AppState = app.state.kaito
    return state.holder.require()


async def test_health_is_503_with_a_reason_until_the_model_is_loaded(tiny_model: Path) -> None:
    release = anyio.Event()

    @asynccontextmanager
    async def gated(settings: InferenceSettings) -> AsyncIterator[Engine]:
        await release.wait()
        async with open_transformers_engine(settings) as engine:
            yield engine

    application = build_app(_settings(tiny_model), engine_opener=gated)
    async with _running(application) as c:
        loading = await c.get("/health")
        assert loading.status_code == 503
        assert loading.json() == {
            "status": "loading",
            "reason": f"the model {tiny_model} is loading",
        }
        early = await c.post(CHAT, json={"messages": HELLO})
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "model_not_ready"
        release.set()
        state: AppState = application.state.kaito
        assert state.loaded is not None
        await state.loaded.wait()
        assert (await c.get("/health")).json() == {"status": "Healthy"}
        answer = await c.post(CHAT, json={"messages": HELLO, "max_tokens": 2})  # no adapters
        assert answer.status_code == 200, answer.text


async def test_failed_load_reports_failed_health_and_tells_the_server(tmp_path: Path) -> None:
    failures: list[BaseException] = []
    failed = anyio.Event()

    def on_failure(err: BaseException) -> None:
        failures.append(err)
        failed.set()

    application = build_app(_settings(tmp_path / "no-such-model"), on_load_failure=on_failure)
    async with _running(application) as c:
        with anyio.fail_after(120):
            await failed.wait()
        health = await c.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "failed"
    assert "the model failed to load" in health.json()["reason"]
    assert isinstance(failures[0], OSError)


async def test_models_lists_the_served_model_and_its_adapters(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    ids = [m["id"] for m in body["data"]]
    assert ids == [SERVED_NAME, ADAPTER_NAME]
    assert body["data"][1]["parent"] == SERVED_NAME
    assert body["data"][0]["max_model_len"] == 512


async def test_chat_usage_counts_the_templated_prompt_and_the_generated_tokens(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from tests.support.tiny_model import CHAT_TEMPLATE  # the template the tokenizer carries

    assert "<|assistant|>" in CHAT_TEMPLATE
    response = await client.post(
        CHAT, json={"messages": HELLO, "max_tokens": 6, "min_tokens": 6, "temperature": 0}
    )
    assert response.status_code == 200
    body = response.json()
    from kaito_runtime.inference import ChatMessage

    prompt_ids = _engine(app).render_chat([ChatMessage("user", "hello kaito")])
    assert body["usage"] == {
        "prompt_tokens": len(prompt_ids),
        "completion_tokens": 6,
        "total_tokens": len(prompt_ids) + 6,
    }
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["model"] == SERVED_NAME


async def test_streamed_chat_has_the_same_text_as_the_plain_answer(
    client: httpx.AsyncClient,
) -> None:
    request = {"messages": HELLO, "max_tokens": 8, "temperature": 0, "model": ADAPTER_NAME}
    plain = (await client.post(CHAT, json=request)).json()
    events: list[Any] = []
    async with client.stream(
        "POST", CHAT, json={**request, "stream": True, "stream_options": {"include_usage": True}}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["usage"] == plain["usage"]
    assert {c["model"] for c in chunks} == {ADAPTER_NAME}


async def test_completion_accepts_token_ids_and_echoes_the_prompt(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = _engine(app).encode("the operator schedules")
    response = await client.post(
        "/v1/completions",
        json={"prompt": ids, "max_tokens": 3, "temperature": 0, "echo": True},
    )
    body = response.json()
    assert response.status_code == 200
    assert body["choices"][0]["text"].startswith(_engine(app).decode(ids))
    assert body["usage"]["prompt_tokens"] == len(ids)


async def test_unknown_model_is_a_404_listing_the_served_names(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CHAT, json={"messages": HELLO, "model": "gpt-4"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == (
        f"model 'gpt-4' is not served here; use one of: {SERVED_NAME}, {ADAPTER_NAME}"
    )


LONG_PROMPT = "kaito answers hello world " * 300


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"model": SERVED_NAME}, "messages: Field required", id="missing-messages"),
        pytest.param(
            {"messages": "hi"}, "messages='hi': Input should be a valid list", id="wrong-type"
        ),
        pytest.param({"messages": []}, "messages: List should have at least 1 item", id="empty"),
        pytest.param(
            {"messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role='robot'",
            id="bad-role",
        ),
        pytest.param(
            {"messages": HELLO, "temperature": "hot"},
            "temperature='hot': Input should be a valid",
            id="t",
        ),
        pytest.param(
            {"messages": HELLO, "max_tokens": 65},
            "max_tokens=65 exceeds this server's limit of 64; ask for at most 64",
            id="max-tokens-limit",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": LONG_PROMPT}]},
            "but the model's context is 512 tokens; shorten the prompt",
            id="prompt-longer-than-context",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "hello " * 470}], "max_tokens": 64},
            "exceeds the model's context of 512 tokens; ask for at most",
            id="prompt-plus-max-tokens",
        ),
        pytest.param({"messages": HELLO, "n": 2}, "n=2 is not supported; use n=1", id="n"),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content has a 'image_url' part",
            id="image-part",
        ),
    ],
)
async def test_bad_chat_requests_are_400_naming_the_problem(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    response = await client.post(CHAT, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_invalid_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CHAT, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the request body is not valid JSON"


async def test_body_over_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    content = "x" * (LIMITS.max_body_bytes + 1)
    response = await client.post(CHAT, json={"messages": [{"role": "user", "content": content}]})
    assert response.status_code == 413
    assert "65536-byte limit" in response.json()["error"]["message"]


async def test_a_full_server_answers_429_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    state: AppState = app.state.kaito
    for _ in range(state.gate.capacity):
        assert state.gate.try_enter()
    try:
        response = await client.post(CHAT, json={"messages": HELLO})
        legacy = await client.post("/chat", json={"prompt": "hi"})
    finally:
        for _ in range(state.gate.capacity):
            state.gate.leave()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert "limit of 2 concurrent requests" in response.json()["error"]["message"]
    assert legacy.status_code == 429
    assert "retry after 1 s" in legacy.json()["detail"]
    assert (await client.post(CHAT, json={"messages": HELLO, "max_tokens": 1})).status_code == 200


async def test_legacy_chat_prompt_returns_the_full_text(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    prompt = "the adapter loads"
    kwargs = {"max_length": len(_engine(app).encode(prompt)) + 5, "do_sample": False}
    full = await client.post("/chat", json={"prompt": prompt, "generate_kwargs": kwargs})
    tail = await client.post(
        "/chat", json={"prompt": prompt, "generate_kwargs": kwargs, "return_full_text": False}
    )
    assert full.status_code == 200
    assert full.json()["Result"] == prompt + tail.json()["Result"]


async def test_legacy_chat_messages_return_the_assistant_text(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chat",
        json={"messages": HELLO, "generate_kwargs": {"max_new_tokens": 4, "do_sample": False}},
    )
    assert response.status_code == 200
    assert isinstance(response.json()["Result"], str)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({}, "send exactly one of 'prompt'", id="neither"),
        pytest.param({"prompt": "a", "messages": HELLO}, "send exactly one of", id="both"),
        pytest.param(
            {"prompt": "a", "generate_kwargs": {"num_beams": 2}}, "num_beams=2", id="beams"
        ),
        pytest.param(
            {"prompt": "kaito " * 20, "generate_kwargs": {"max_length": 3}},
            "counts the prompt too; raise max_length above",
            id="max-length",
        ),
        pytest.param(
            {"prompt": "a", "generate_kwargs": {"max_length": "long"}},
            "generate_kwargs.max_length='long': Input should be a valid integer",
            id="wrong-type",
        ),
    ],
)
async def test_bad_legacy_requests_are_400_with_a_detail(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    response = await client.post("/chat", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


async def test_metrics_count_requests_tokens_and_time_to_first_token(
    client: httpx.AsyncClient,
) -> None:
    before = _samples((await client.get("/metrics")).text)
    response = await client.post(
        CHAT, json={"messages": HELLO, "max_tokens": 5, "min_tokens": 5, "temperature": 0}
    )
    usage = response.json()["usage"]
    after = _samples((await client.get("/metrics")).text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("kaito_inference_requests_total", route=CHAT, status="200") == 1
    assert delta("kaito_inference_prompt_tokens_total") == usage["prompt_tokens"]
    assert delta("kaito_inference_generation_tokens_total") == 5
    assert delta("kaito_inference_time_to_first_token_seconds_count") == 1
    assert delta("kaito_inference_request_duration_seconds_count", route=CHAT) == 1
    assert after[("kaito_inference_model_loaded", ())] == 1
