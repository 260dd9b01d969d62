"""The HTTP application factory: OpenAI-compatible API, KAITO's legacy ``/chat``, health, metrics.

There is no module-level app: :func:`build_app` wires routes to a :class:`Serving` and starts
loading the engine in the background when the application starts, so ``/health`` answers 503
(with a reason) until the model is loaded. Domain errors become HTTP responses in one place.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import attrs
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from kaito_runtime.inference._asgi import error_body, error_bytes
from kaito_runtime.inference._disconnect import CancelOnDisconnect
from kaito_runtime.inference._engine import Engine
from kaito_runtime.inference._errors import EngineUnavailableError, RequestError
from kaito_runtime.inference._limits import AdmissionGate, LimitsMiddleware
from kaito_runtime.inference._metrics import MetricsMiddleware, ServerMetrics
from kaito_runtime.inference._openapi import (
    ChatCompletion,
    Completion,
    Health,
    LegacyAnswer,
    ModelList,
    document_api,
    error_responses,
)
from kaito_runtime.inference._protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    LegacyChatRequest,
)
from kaito_runtime.inference._serving import EngineHolder, Serving, shown
from kaito_runtime.inference._settings import InferenceSettings

__all__ = ("AppState", "EngineOpener", "build_app")

log = structlog.get_logger(__name__)

EngineOpener = Callable[[InferenceSettings], AbstractAsyncContextManager[Engine]]
GENERATION_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions", "/chat"})
ROUTES = GENERATION_ROUTES | {"/", "/health", "/v1/models", "/metrics"}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# With "stream": true the answer is server-sent events. Before OpenAPI 3.2 (``itemSchema``) a
# sequential media type's ``schema`` describes each event: the fields of one SSE event, ``data``
# a JSON chunk or ``[DONE]``.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}
SSE_CONTENT = {"text/event-stream": {"schema": SSE_EVENT}}


@attrs.define
class AppState:
    """What an app holds: its engine, metrics and admission gate; ``loaded`` fires on load."""

    settings: InferenceSettings
    holder: EngineHolder
    metrics: ServerMetrics
    gate: AdmissionGate
    serving: Serving
    loaded: anyio.Event | None = None


class _ErrorJSON(JSONResponse):
    """A JSON error response, ASCII-escaped so any text a client sent encodes."""

    def render(self, content: Any) -> bytes:
        return error_bytes(content)


def _error(path: str, status: int, message: str, kind: str, **extra: Any) -> JSONResponse:
    body = error_body(path, message, kind, param=extra.get("param"), code=extra.get("code"))
    return _ErrorJSON(body, status_code=status, headers=extra.get("headers"))


# Pydantic names union branches in an error's location ("prompt.list[int].0"): not fields.
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _field(loc: Any) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part != "body" and part.isidentifier() and part not in _TYPE_TAGS:
            parts.append(f".{part}" if parts else part)
    return "".join(parts)


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    """One line naming each bad field, its value when it is a plain one, and the rule broken."""
    problems: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    for item in err.errors():
        if item.get("type") == "json_invalid":
            return "the request body is not valid JSON", None
        field = _field(item.get("loc", ()))
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if not field and item.get("type") == "value_error":
            field = ""  # a whole-request check: its message names the field
        else:
            field = field or "body"
            value = item.get("input")
            if item.get("type") != "missing" and isinstance(value, int | float | str):
                values.setdefault(field, shown(value))
        if message not in problems.setdefault(field, []):
            problems[field].append(message)
    parts = []
    for field, messages in list(problems.items())[:5]:
        said = " or ".join(messages)
        if field in values:
            said = f"{field}={values[field]}: {said}"
        elif field:
            said = f"{field}: {said}"
        parts.append(said)
    param = next((f for f in problems if f and f != "body"), None)
    return "invalid request: " + "; ".join(parts), param


def build_app(
    settings: InferenceSettings,
    *,
    engine_opener: EngineOpener | None = None,
    on_load_failure: Callable[[BaseException], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> FastAPI:
    """Build the application; the engine loads in the background once the app starts.

    ``engine_opener`` opens the engine (default: the backend the settings choose);
    ``on_load_failure`` is told when loading fails (the server exits on it).
    """
    if engine_opener is None:
        from kaito_runtime.inference.backends import open_engine

        engine_opener = open_engine
    opener = engine_opener
    metrics = ServerMetrics()
    holder = EngineHolder()
    gate = AdmissionGate(settings.limits.max_concurrent_requests)
    serving = Serving(holder, settings.limits, metrics, clock=clock)
    state = AppState(settings=settings, holder=holder, metrics=metrics, gate=gate, serving=serving)

    async def hold_engine(stop: anyio.Event, loaded: anyio.Event) -> None:
        started = clock()
        try:
            async with opener(settings) as engine:
                holder.engine = engine
                metrics.model_loaded.set(1)
                log.info("engine_ready", seconds=round(clock() - started, 2))
                if engine.info.stand_in:
                    log.warning(
                        "model_is_stand_in", model=settings.model, note=engine.info.stand_in
                    )
                loaded.set()
                await stop.wait()
        except Exception as err:
            reason = " ".join(str(err).split())[:500] or type(err).__name__
            holder.failure = f"the model failed to load: {reason}"
            log.exception("engine_load_failed")
            if on_load_failure is not None:
                on_load_failure(err)
        finally:
            holder.engine = None
            metrics.model_loaded.set(0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = anyio.Event()
        state.loaded = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_engine, stop, state.loaded)
            try:
                yield
            finally:
                stop.set()

    app = FastAPI(title="KAITO inference", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.kaito = state

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        return _error(
            request.url.path,
            err.status,
            err.message,
            "invalid_request_error" if err.status < 500 else "server_error",
            param=err.param,
            code=err.code,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(err)
        return _error(request.url.path, 400, message, "invalid_request_error", param=param)

    @app.exception_handler(EngineUnavailableError)
    async def unavailable(request: Request, err: EngineUnavailableError) -> JSONResponse:
        return _error(
            request.url.path,
            503,
            str(err),
            "service_unavailable",
            code="model_not_ready",
            headers={"Retry-After": str(settings.limits.retry_after_seconds)},
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        if err.status_code == 404:
            message = f"{request.method} {request.url.path} is not a route of this server"
        elif err.status_code == 405:
            allowed = (err.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        else:
            message = str(err.detail)
        return _error(
            request.url.path, err.status_code, message, "invalid_request_error", headers=err.headers
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:
        # Starlette logs the traceback; the client gets JSON, never a plain-text page.
        return _error(
            request.url.path,
            500,
            f"the server failed on this request ({type(err).__name__}); it is in the server log",
            "server_error",
        )

    @app.get("/", response_class=PlainTextResponse)
    async def home() -> PlainTextResponse:
        return PlainTextResponse("Server is running")

    @app.get(
        "/health", response_model=None, responses={200: {"model": Health}, 503: {"model": Health}}
    )
    async def health() -> JSONResponse:
        if holder.engine is not None:
            return JSONResponse({"status": "Healthy"})
        status = "failed" if holder.failure else "loading"
        reason = holder.failure or f"the model {settings.model} is loading"
        return JSONResponse({"status": status, "reason": reason}, status_code=503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    )
    async def prometheus() -> Response:
        body = generate_latest(metrics.registry)
        if holder.engine is not None:
            body += holder.engine.metrics_text()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/models",
        response_model=None,
        responses={200: {"model": ModelList}, **error_responses([503])},
    )
    async def models() -> dict[str, Any]:
        engine = holder.require()
        info = engine.info
        created = int(time.time())
        data: list[dict[str, Any]] = [
            {
                "id": info.served_model_name,
                "object": "model",
                "created": created,
                "owned_by": "kaito",
                "root": settings.model,
                "parent": None,
                "max_model_len": info.max_model_len,
                **({"stand_in": info.stand_in} if info.stand_in else {}),
            }
        ]
        strengths = {a.name: a.strength for a in settings.adapters}
        data += [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "kaito",
                "root": name,
                "parent": info.served_model_name,
                "max_model_len": info.max_model_len,
                "strength": strengths.get(name, 1.0),
            }
            for name in info.adapters
        ]
        return {"object": "list", "data": data}

    @app.post(
        "/v1/completions",
        response_model=None,
        responses={200: {"model": Completion, "content": SSE_CONTENT}, **error_responses()},
    )
    async def completions(body: CompletionRequest) -> dict[str, Any] | StreamingResponse:
        if body.stream:
            prepared, prompt_text = await serving.prepare_completion(body)
            return StreamingResponse(
                serving.completion_stream(prepared, prompt_text, body),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        return await serving.completion(body)

    @app.post(
        "/v1/chat/completions",
        response_model=None,
        responses={200: {"model": ChatCompletion, "content": SSE_CONTENT}, **error_responses()},
    )
    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        if body.stream:
            prepared = await serving.prepare_chat(body)
            return StreamingResponse(
                serving.chat_stream(prepared, body),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        return await serving.chat(body)

    @app.post(
        "/chat",
        response_model=None,
        responses={200: {"model": LegacyAnswer}, **error_responses(legacy=True)},
    )
    async def legacy_chat(body: LegacyChatRequest) -> dict[str, Any]:
        return await serving.legacy_chat(body)

    document_api(app, settings.limits)
    # Outermost last: metrics see everything; limits read the body and admit; only admitted
    # requests are watched for a disconnect.
    app.add_middleware(CancelOnDisconnect, paths=GENERATION_ROUTES)
    app.add_middleware(
        LimitsMiddleware,
        paths=GENERATION_ROUTES,
        gate=gate,
        max_body_bytes=settings.limits.max_body_bytes,
        body_read_timeout=settings.limits.body_read_timeout,
        retry_after=settings.limits.retry_after_seconds,
        metrics=metrics,
    )
    app.add_middleware(MetricsMiddleware, routes=ROUTES, metrics=metrics, clock=clock)
    return app
