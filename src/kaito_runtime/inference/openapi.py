"""The server's OpenAPI document says what each route really answers.

Response bodies are described by the models below (the handlers build plain dicts; these exist
for the document, and the schemathesis test holds the two together). Errors are 400, never
FastAPI's default 422, so the 422 entries FastAPI adds are dropped, and every status the server
gives is listed with its body: OpenAI's error shape on ``/v1/...``, ``{"detail": ...}`` on the
legacy ``/chat``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from kaito_runtime.inference.protocol import ErrorResponse, LegacyError

__all__ = (
    "ChatCompletion",
    "Completion",
    "Health",
    "LegacyAnswer",
    "ModelList",
    "document_errors",
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


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"]
    data: list[ModelCard]


class LegacyAnswer(BaseModel):
    """``POST /chat``."""

    Result: str


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


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` drop the 422 responses FastAPI adds (the server answers 400)."""

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
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
