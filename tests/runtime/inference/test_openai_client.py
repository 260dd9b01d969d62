"""The real ``openai`` client against the real server process (uvicorn on loopback)."""

from __future__ import annotations

import openai
import pytest

from tests.runtime.inference.conftest import ADAPTER_NAME, SERVED_NAME, RunningServer

HELLO = [{"role": "user", "content": "hello kaito"}]


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def test_the_port_answered_503_while_the_model_loaded(server: RunningServer) -> None:
    # The socket is bound before the model loads, so the first answer is "loading", not a
    # refused connection.
    assert server.first_health_status == 503


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [SERVED_NAME, ADAPTER_NAME]


@pytest.mark.parametrize("model", [SERVED_NAME, ADAPTER_NAME])
def test_chat_completion(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=HELLO,
        max_tokens=5,
        temperature=0,  # type: ignore[arg-type]
    )
    assert answer.model == model
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert 1 <= answer.usage.completion_tokens <= 5


def test_streamed_chat_completion_matches_the_plain_one(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model=ADAPTER_NAME,
        messages=HELLO,
        max_tokens=6,
        temperature=0,  # type: ignore[arg-type]
    )
    stream = client.chat.completions.create(
        model=ADAPTER_NAME,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason


def test_completion_plain_and_streamed(client: openai.OpenAI) -> None:
    plain = client.completions.create(
        model=SERVED_NAME, prompt="the operator schedules", max_tokens=5, temperature=0
    )
    streamed = client.completions.create(
        model=SERVED_NAME, prompt="the operator schedules", max_tokens=5, temperature=0,
        stream=True,
    )  # fmt: skip
    text = "".join(c.choices[0].text for c in streamed)
    assert text == plain.choices[0].text
    assert plain.usage is not None
    assert plain.usage.prompt_tokens > 0


def test_errors_surface_as_openai_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="exceeds this server's limit of 4096"):
        client.chat.completions.create(
            model=SERVED_NAME,
            messages=HELLO,
            max_tokens=5000,  # type: ignore[arg-type]
        )
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.chat.completions.create(model="nope", messages=HELLO)  # type: ignore[arg-type]
