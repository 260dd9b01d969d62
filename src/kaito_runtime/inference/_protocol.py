"""Request schemas of the HTTP surface: OpenAI completions and chat, and KAITO's legacy ``/chat``.

Unknown fields are ignored (clients send vendor extensions); known fields are type-checked, and a
wrong type is a 400 naming the field. Numbers must be finite (JSON's ``NaN``/``Infinity``, which
Python's parser accepts, are refused), seeds fit in 64 bits as vLLM requires, and text must be
valid Unicode: a lone UTF-16 surrogate (``"\\ud800"`` in JSON) cannot be tokenized or encoded
back to UTF-8, so it is refused here, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = (
    "SEED_MAX",
    "SEED_MIN",
    "ChatCompletionRequest",
    "CompletionRequest",
    "ContentPart",
    "ErrorDetail",
    "ErrorResponse",
    "LegacyChatRequest",
    "LegacyError",
    "LegacyGenerateKwargs",
    "OpenAIMessage",
    "StreamOptions",
)

Role = Literal["system", "developer", "user", "assistant", "tool"]

# A seed is a signed 64-bit integer (vLLM's bounds; torch takes no wider one).
SEED_MIN = -(2**63)
SEED_MAX = 2**63 - 1


Seed = Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)]
# Penalized logits are divided by it: below this they overflow to infinity and sampling fails.
MIN_REPETITION_PENALTY = 0.01
RepetitionPenalty = Annotated[float, Field(ge=MIN_REPETITION_PENALTY)]


def _check_unicode(value: object, path: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"{path} holds a lone UTF-16 surrogate (U+{ord(value[err.start]):04X}) at "
                f"character {err.start}; send valid Unicode text (surrogates only in pairs)"
            ) from None
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _check_unicode(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_unicode(item, f"{path}[{index}]")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Request(_Lenient):
    @model_validator(mode="after")
    def _valid_unicode(self) -> Self:
        _check_unicode(self, "")
        return self


class ErrorDetail(BaseModel):
    """The ``error`` object of an OpenAI error response."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """An OpenAI error response (every error of the ``/v1`` routes)."""

    error: ErrorDetail


class LegacyError(BaseModel):
    """An error of the legacy ``/chat`` route, shaped as upstream's FastAPI app answered."""

    detail: str


class StreamOptions(_Lenient):
    """``stream_options``: ``include_usage`` adds a final chunk with the token counts."""

    include_usage: bool = False


class _Sampling(_Request):
    model: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_tokens: Annotated[int, Field(ge=0)] = 0
    repetition_penalty: RepetitionPenalty | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: Annotated[int, Field(ge=1)] = 1
    seed: Seed | None = None
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
    repetition_penalty: RepetitionPenalty = 1.0
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    seed: Seed | None = None


class LegacyMessage(_Lenient):
    """A message of the legacy conversational mode."""

    role: str
    content: str


class LegacyChatRequest(_Request):
    """``POST /chat``: ``prompt`` (text generation) or ``messages`` (conversational)."""

    prompt: str | None = None
    messages: list[LegacyMessage] | None = None
    return_full_text: bool = True
    clean_up_tokenization_spaces: bool = False
    prefix: str | None = None
    handle_long_generation: str | None = None
    generate_kwargs: LegacyGenerateKwargs | None = None
    model: str | None = None
