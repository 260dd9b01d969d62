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

from kaito_runtime.inference.engine import Engine
from kaito_runtime.inference.errors import EngineUnavailableError, RequestError
from kaito_runtime.inference.limits import AdmissionGate, LimitsMiddleware, MetricsMiddleware
from kaito_runtime.inference.metrics import ServerMetrics
from kaito_runtime.inference.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    LegacyChatRequest,
)
from kaito_runtime.inference.serving import EngineHolder, Serving
from kaito_runtime.inference.settings import InferenceSettings

__all__ = ("AppState", "EngineOpener", "build_app")

log = structlog.get_logger(__name__)

EngineOpener = Callable[[InferenceSettings], AbstractAsyncContextManager[Engine]]
GENERATION_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions", "/chat"})
ROUTES = GENERATION_ROUTES | {"/", "/health", "/v1/models", "/metrics"}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@attrs.define
class AppState:
    """What an app holds: its engine, metrics and admission gate; ``loaded`` fires on load."""

    settings: InferenceSettings
    holder: EngineHolder
    metrics: ServerMetrics
    gate: AdmissionGate
    serving: Serving
    loaded: anyio.Event | None = None


def _error(path: str, status: int, message: str, kind: str, **extra: Any) -> JSONResponse:
    if path.startswith("/v1/"):
        body: dict[str, Any] = {
            "error": {
                "message": message,
                "type": kind,
                "param": extra.get("param"),
                "code": extra.get("code"),
            }
        }
    else:
        body = {"detail": message}
    return JSONResponse(body, status_code=status, headers=extra.get("headers"))


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    parts = []
    first_param: str | None = None
    for item in err.errors():
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        if item.get("type") == "json_invalid":
            return "the request body is not valid JSON", None
        field = ".".join(loc) or "body"
        first_param = first_param or field
        parts.append(f"{field}: {item.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts[:5]), first_param


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

    @app.get("/")
    async def home() -> PlainTextResponse:
        return PlainTextResponse("Server is running")

    @app.get("/health")
    async def health() -> JSONResponse:
        if holder.engine is not None:
            return JSONResponse({"status": "Healthy"})
        status = "failed" if holder.failure else "loading"
        reason = holder.failure or f"the model {settings.model} is loading"
        return JSONResponse({"status": status, "reason": reason}, status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        body = generate_latest(metrics.registry)
        if holder.engine is not None:
            body += holder.engine.metrics_text()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        engine = holder.require()
        info = engine.info
        created = int(time.time())
        data = [
            {
                "id": info.served_model_name,
                "object": "model",
                "created": created,
                "owned_by": "kaito",
                "root": settings.model,
                "parent": None,
                "max_model_len": info.max_model_len,
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

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest) -> dict[str, Any] | StreamingResponse:
        if body.stream:
            prepared, prompt_text = await serving.prepare_completion(body)
            return StreamingResponse(
                serving.completion_stream(prepared, prompt_text, body),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        return await serving.completion(body)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        if body.stream:
            prepared = await serving.prepare_chat(body)
            return StreamingResponse(
                serving.chat_stream(prepared, body),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        return await serving.chat(body)

    @app.post("/chat")
    async def legacy_chat(body: LegacyChatRequest) -> dict[str, Any]:
        return await serving.legacy_chat(body)

    app.add_middleware(
        LimitsMiddleware,
        paths=GENERATION_ROUTES,
        gate=gate,
        max_body_bytes=settings.limits.max_body_bytes,
        retry_after=settings.limits.retry_after_seconds,
        metrics=metrics,
    )
    app.add_middleware(MetricsMiddleware, routes=ROUTES, metrics=metrics, clock=clock)
    return app
