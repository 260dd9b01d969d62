"""Request schemas of the HTTP surface: OpenAI completions and chat, and KAITO's legacy ``/chat``.

Unknown fields are ignored (clients send vendor extensions); known fields are type-checked, and a
wrong type is a 400 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = (
    "ChatCompletionRequest",
    "CompletionRequest",
    "ContentPart",
    "LegacyChatRequest",
    "LegacyGenerateKwargs",
    "OpenAIMessage",
    "StreamOptions",
)

Role = Literal["system", "developer", "user", "assistant", "tool"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Lenient):
    """``stream_options``: ``include_usage`` adds a final chunk with the token counts."""

    include_usage: bool = False


class _Sampling(_Lenient):
    model: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_tokens: Annotated[int, Field(ge=0)] = 0
    repetition_penalty: Annotated[float, Field(gt=0.0)] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: Annotated[int, Field(ge=1)] = 1
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


class CompletionRequest(_Sampling):
    """``POST /v1/completions``."""

    prompt: str | list[str] | list[int]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16
    echo: bool = False
    logprobs: int | None = None


class ContentPart(_Lenient):
    """One part of a multi-part message; only text parts are served."""

    type: str
    text: str | None = None


class OpenAIMessage(_Lenient):
    """A chat message; ``content`` is text or a list of text parts."""

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[OpenAIMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None


class LegacyGenerateKwargs(_Lenient):
    """``generate_kwargs`` of the legacy ``/chat`` API, with upstream's defaults.

    ``max_length`` counts the prompt too (Hugging Face semantics); ``max_new_tokens`` wins when
    given.
    """

    max_length: Annotated[int, Field(ge=1)] = 200
    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    min_length: Annotated[int, Field(ge=0)] = 0
    do_sample: bool = True
    early_stopping: bool = False
    num_beams: Annotated[int, Field(ge=1)] = 1
    temperature: Annotated[float, Field(ge=0.0)] = 1.0
    top_k: Annotated[int, Field(ge=0)] = 10
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    typical_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    repetition_penalty: Annotated[float, Field(gt=0.0)] = 1.0
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    seed: int | None = None


class LegacyMessage(_Lenient):
    """A message of the legacy conversational mode."""

    role: str
    content: str


class LegacyChatRequest(_Lenient):
    """``POST /chat``: ``prompt`` (text generation) or ``messages`` (conversational)."""

    prompt: str | None = None
    messages: list[LegacyMessage] | None = None
    return_full_text: bool = True
    clean_up_tokenization_spaces: bool = False
    prefix: str | None = None
    handle_long_generation: str | None = None
    generate_kwargs: LegacyGenerateKwargs | None = None
    model: str | None = None
