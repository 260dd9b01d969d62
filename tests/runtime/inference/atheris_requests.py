"""Coverage-guided fuzzing (atheris/libFuzzer) of the inference server's request handling.

``python -m tests.runtime.inference.atheris_requests MODEL_DIR [libFuzzer flags] [CORPUS]``.
Each input is one request: its first byte picks the route, the rest is the body, sent through
the whole ASGI application (limits, parsing, validation, serving, streaming) with the model's
real tokenizer (:class:`TokenizerEngine`). The server's modules are instrumented, so libFuzzer
steers toward new branches. A 5xx answer, an error body not in the route's shape, a stream
without its end, or an exception escaping the application is a crash.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["kaito_runtime"]):
    from kaito_runtime.inference import AppState, InferenceSettings, Limits, build_app

from tests.runtime.inference.tokenizer_engine import TokenizerEngine

ROUTES = ("/v1/completions", "/v1/chat/completions", "/chat")
SERVED = "fuzz-model"


async def _call(app: Any, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"kaito"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
        "state": {},
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    finished = asyncio.Event()
    status = 0
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update((k.decode(), v.decode()) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


def _check(path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    if not 200 <= status < 500:
        raise AssertionError(f"{path} answered {status}: {body[:300]!r}")
    if headers.get("content-type", "").startswith("text/event-stream"):
        if not body.endswith(b"data: [DONE]\n\n") or b'"error"' in body:
            raise AssertionError(f"{path} stream ended badly: {body[-300:]!r}")
        return
    answer = json.loads(body)
    if status >= 400:
        ok = (
            set(answer["error"]) == {"message", "type", "param", "code"}
            if path.startswith("/v1/")
            else isinstance(answer["detail"], str)
        )
        if not ok:
            raise AssertionError(f"{path} error not in the route's shape: {answer}")


def main(argv: list[str]) -> None:
    model_dir = Path(argv[1])
    settings = InferenceSettings(
        model=str(model_dir),
        served_model_name=SERVED,
        backend="transformers",
        limits=Limits(max_tokens=8, max_body_bytes=16 * 1024),
    )
    app = build_app(settings)
    state: AppState = app.state.kaito
    state.holder.engine = TokenizerEngine(model_dir, SERVED)  # loaded: no lifespan needed
    loop = asyncio.new_event_loop()

    def one_input(data: bytes) -> None:
        if not data:
            return
        path = ROUTES[data[0] % len(ROUTES)]
        status, headers, body = loop.run_until_complete(_call(app, path, data[1:]))
        _check(path, status, headers, body)

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
