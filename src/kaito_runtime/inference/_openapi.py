"""The server's OpenAPI document says what each route really takes and answers.

Response bodies are described by the models below (the handlers build plain dicts; these exist
for the document, and the schemathesis test holds the two together). Errors are 400, never
FastAPI's default 422, so the 422 entries FastAPI adds are dropped, and every status the server
gives is listed with its body: OpenAI's error shape on ``/v1/...``, ``{"detail": ...}`` on the
legacy ``/chat``. The request schemas carry this server's limits (``max_tokens``, the stop
strings' number and length), so a client generated from the document stays within them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from kaito_runtime.inference._protocol import SEED_MAX, SEED_MIN, ErrorResponse, LegacyError
from kaito_runtime.inference._settings import Limits

__all__ = (
    "ChatCompletion",
    "Completion",
    "Health",
    "LegacyAnswer",
    "ModelList",
    "document_api",
    "error_responses",
)

FinishReason = Literal["stop", "length"]

_DESCRIPTIONS = {
    400: "The request is invalid: the message names the field, its value and the rule.",
    404: "The model is not served here (the message lists what is), or no such route.",
    408: "The request body did not arrive within --body-read-timeout.",
    413: "The request body is larger than --max-body-bytes.",
    429: "--max-concurrent-requests requests are in flight; retry after Retry-After.",
    500: "The server failed on this request.",
    503: "The model is not loaded (yet); retry after Retry-After.",
}
GENERATION_ERRORS = (400, 404, 408, 413, 429, 500, 503)


class Usage(BaseModel):
    """Token counts of a request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    """The one choice of a completion."""

    index: int
    text: str
    logprobs: None
    finish_reason: FinishReason | None


class Completion(BaseModel):
    """``POST /v1/completions`` (not streamed)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    #: ``kaito-stand-in`` when the model is a stand-in (random weights), with what it is.
    system_fingerprint: str | None = None
    kaito_stand_in: str | None = None


class AssistantMessage(BaseModel):
    """The generated message."""

    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    """The one choice of a chat completion."""

    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: FinishReason | None


class ChatCompletion(BaseModel):
    """``POST /v1/chat/completions`` (not streamed)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    #: ``kaito-stand-in`` when the model is a stand-in (random weights), with what it is.
    system_fingerprint: str | None = None
    kaito_stand_in: str | None = None


class ModelCard(BaseModel):
    """A served model: the base model, or an adapter (``parent`` is the base)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    root: str
    parent: str | None
    max_model_len: int
    strength: float | None = None
    #: What the base model is when it is a stand-in (random weights, scaled down).
    stand_in: str | None = None


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"]
    data: list[ModelCard]


class LegacyAnswer(BaseModel):
    """``POST /chat``."""

    Result: str
    #: What the model is when it is a stand-in (random weights, scaled down): its answers are
    #: noise, never the real model's.
    stand_in: str | None = None


class Health(BaseModel):
    """``GET /health``: ``Healthy``, or ``loading``/``failed`` with the reason (503)."""

    status: str
    reason: str | None = None


def error_responses(
    statuses: Iterable[int] = GENERATION_ERRORS, *, legacy: bool = False
) -> dict[int | str, dict[str, Any]]:
    """Return FastAPI ``responses`` entries for these error statuses."""
    model = LegacyError if legacy else ErrorResponse
    return {status: {"model": model, "description": _DESCRIPTIONS[status]} for status in statuses}


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))


def _state_limits(schemas: dict[str, Any], limits: Limits) -> None:
    """Write this server's limits into the request schemas (``max_tokens``, ``stop``).

    Seed bounds are written again as integers: FastAPI's document model keeps ``minimum`` and
    ``maximum`` as floats, and 2**63 - 1 is no float.
    """
    for model in schemas.values():
        for variant in _variants(model.get("properties", {}).get("seed", {})):
            if variant.get("type") == "integer":
                variant.update(minimum=SEED_MIN, maximum=SEED_MAX)
    for name, fields in (
        ("CompletionRequest", ("max_tokens",)),
        ("ChatCompletionRequest", ("max_tokens", "max_completion_tokens")),
    ):
        properties = schemas.get(name, {}).get("properties", {})
        for field in fields:
            for variant in _variants(properties.get(field, {})):
                if variant.get("type") == "integer":
                    variant["maximum"] = limits.max_tokens
        for variant in _variants(properties.get("stop", {})):
            text = variant.get("items", variant)
            if text.get("type") == "string":
                text.update(minLength=1, maxLength=limits.max_stop_string_chars)
            if variant.get("type") == "array":
                variant["maxItems"] = limits.max_stop_strings


def document_api(app: FastAPI, limits: Limits) -> None:
    """Make ``app.openapi()`` state ``limits`` and drop FastAPI's 422s (the server answers 400)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                operation.get("responses", {}).pop("422", None)
        schemas = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        _state_limits(schemas, limits)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
