"""The engine interface both backends implement, and the values crossing it.

Protocol layer: the HTTP surface (``app``, ``serving``) talks to an :class:`Engine` only, so the
transformers and vLLM backends are interchangeable behind one API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

import attrs

__all__ = (
    "ChatMessage",
    "Engine",
    "FinishReason",
    "GenerationDelta",
    "GenerationRequest",
    "ModelInfo",
    "PromptError",
    "SamplingOptions",
)

FinishReason = Literal["stop", "length"]


@attrs.frozen
class ChatMessage:
    """One chat turn."""

    role: str
    content: str


@attrs.frozen
class SamplingOptions:
    """Decoding options; ``temperature == 0`` means greedy, ``top_k == 0`` means no top-k."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_tokens: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@attrs.frozen
class GenerationRequest:
    """A tokenized prompt to continue.

    ``adapter`` is an adapter name, or ``None`` for the served model (the base model with every
    adapter applied at its strength).
    """

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingOptions
    adapter: str | None = None


@attrs.frozen
class GenerationDelta:
    """New output since the previous delta: text, its token count, and why generation ended."""

    text: str
    token_count: int
    finish_reason: FinishReason | None = None


@attrs.frozen
class ModelInfo:
    """What the engine serves; token ids lie in ``[0, vocab_size)``."""

    served_model_name: str
    max_model_len: int
    adapters: tuple[str, ...]
    backend: str
    vocab_size: int
    #: What the model is when it is a stand-in (random weights, scaled down), else None.
    stand_in: str | None = None


class PromptError(ValueError):
    """The engine cannot take this prompt (the chat template refused the messages)."""


class Engine(Protocol):
    """Protocol: a loaded model that tokenizes and generates.

    ``generate`` yields deltas as they are produced; closing the iterator early (client gone)
    must stop the work for that request. Tokenizing methods are cheap and may run on the event
    loop for short inputs.
    """

    @property
    def info(self) -> ModelInfo:
        """Describe the served model."""
        ...

    def encode(self, text: str) -> list[int]:
        """Tokenize a completion prompt (with the tokenizer's special tokens)."""
        ...

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Apply the chat template (with the generation prompt) and tokenize.

        Raises:
            PromptError: the model's chat template refuses the messages.
        """
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """Detokenize."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Generate for ``request``, yielding deltas; the last one has a finish reason."""
        ...

    def metrics_text(self) -> bytes:
        """Return the backend's own Prometheus metrics text (may be empty)."""
        ...
