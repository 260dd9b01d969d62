"""Property-based fuzzing of request parsing, in-process over the real transformers engine.

Hypothesis builds request bodies from the fields the routes know, with hostile values (huge and
negative numbers, tiny floats, non-finite ones, lone surrogates, wrong types, deep nesting) and
sends them as JSON. Whatever it sends, the answer is a 2xx or a 4xx, as JSON in the route's error
shape; never a 500. Marker ``fuzz``: a few seconds in the default run, ``nox -s fuzz`` for more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st

from kaito_runtime.inference import AppState, InferenceSettings, Limits, build_app
from tests.runtime.inference.conftest import SERVED_NAME
from tests.support.fuzz import FuzzBudget, fuzz_seconds, hypothesis_budget

pytestmark = pytest.mark.fuzz

ROUTES = ("/v1/completions", "/v1/chat/completions", "/chat")
# Small enough that every admitted generation is a few milliseconds.
LIMITS = Limits(max_tokens=4, max_body_bytes=64 * 1024)

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.text(max_size=4), surrogates), max_size=8).map("".join),
    st.sampled_from(["", " ", "\x00", "<|end|>", "<|assistant|>", "\ufffd", "é" * 30]),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 4, 5, 511, 512]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 5e-324, 1e308, 0.0, -0.0, 0.5, 1.0, 2.0, 2.0000001]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), values),
        "content": st.one_of(
            texts,
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.one_of(st.just("text"), texts)}, optional={"text": texts}
                ),
                max_size=3,
            ),
            values,
        ),
    },
)
fields: dict[str, st.SearchStrategy[Any]] = {
    "model": st.one_of(st.just(SERVED_NAME), texts, values),
    "prompt": st.one_of(
        texts,
        st.lists(texts, max_size=3),
        st.lists(st.one_of(st.integers(-5, 600), numbers), max_size=8),
        values,
    ),
    "messages": st.one_of(st.lists(message, max_size=3), values),
    "max_tokens": st.one_of(st.integers(-2, 8), numbers),
    "max_completion_tokens": st.one_of(st.integers(-2, 8), numbers),
    "min_tokens": numbers,
    "temperature": numbers,
    "top_p": numbers,
    "top_k": numbers,
    "repetition_penalty": numbers,
    "seed": numbers,
    "n": numbers,
    "stop": st.one_of(texts, st.lists(texts, max_size=6), values),
    "stream": st.one_of(st.booleans(), values),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), values),
    "echo": st.one_of(st.booleans(), values),
    "logprobs": values,
    "presence_penalty": numbers,
    "return_full_text": st.one_of(st.booleans(), values),
    "prefix": st.one_of(texts, values),
    "generate_kwargs": st.one_of(
        st.dictionaries(
            st.sampled_from(
                [
                    "max_length",
                    "max_new_tokens",
                    "min_length",
                    "do_sample",
                    "num_beams",
                    "temperature",
                    "top_k",
                    "top_p",
                    "repetition_penalty",
                    "seed",
                ]
            ),
            numbers,
            max_size=5,
        ),
        values,
    ),
}
words = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), min_size=1)
valid_bodies = {
    "/v1/completions": st.fixed_dictionaries(
        {"prompt": words, "max_tokens": st.integers(1, 4)},
        optional={
            "temperature": st.floats(0, 2),
            "stream": st.booleans(),
            "echo": st.booleans(),
            "stop": st.lists(words, max_size=4),
        },
    ),
    "/v1/chat/completions": st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries({"role": st.just("user"), "content": words}),
                min_size=1,
                max_size=2,
            ),
            "max_tokens": st.integers(1, 4),
        },
        optional={"temperature": st.floats(0, 2), "stream": st.booleans(), "seed": st.integers()},
    ),
    "/chat": st.fixed_dictionaries(
        {
            "prompt": words,
            "generate_kwargs": st.fixed_dictionaries({"max_new_tokens": st.integers(1, 4)}),
        }
    ),
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any]:
    """A route and a body: a valid request with a few hostile fields, or anything at all."""
    route = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 7)) == 0:
        return route, draw(values)
    body = dict(draw(valid_bodies[route]))
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        body[name] = draw(fields[name])
    return route, body


@asynccontextmanager
async def _served(model: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = InferenceSettings(
        model=str(model), served_model_name=SERVED_NAME, backend="transformers", limits=LIMITS
    )
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kaito", timeout=60
        ) as client,
    ):
        state: AppState = app.state.kaito
        assert state.loaded is not None
        await state.loaded.wait()
        yield client


def _check(route: str, response: httpx.Response, sent: bytes) -> None:
    assert response.status_code < 500, (route, sent[:500], response.text[:500])
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]", events[-3:]
        assert not any('"error"' in event for event in events), events
        return
    body = response.json()
    if response.status_code >= 400:
        if route.startswith("/v1/"):
            assert set(body["error"]) == {"message", "type", "param", "code"}
        else:
            assert isinstance(body["detail"], str)


def test_no_request_body_makes_the_server_fail(tiny_model: Path) -> None:
    seen: dict[int, int] = {}
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_served(tiny_model)) as client,
    ):
        budget = FuzzBudget()  # from here: the model load does not count

        # Fewer examples than the helper's default: each one runs a generation.
        @settings(hypothesis_budget(), max_examples=max(50, int(25 * fuzz_seconds())))
        @given(request=requests())
        def examples(request: tuple[str, Any]) -> None:
            if not budget.spend():
                return
            route, body = request
            sent = json.dumps(body).encode()
            post = partial(
                client.post, route, content=sent, headers={"content-type": "application/json"}
            )
            response = portal.call(post)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            _check(route, response, sent)

        examples()
    budget.report("inference request bodies")
    assert seen.get(200, 0) > 0, seen  # the strategies reach generation, not only errors
    assert seen.get(400, 0) > 0, seen
