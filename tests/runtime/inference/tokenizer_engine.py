"""An engine with the tiny model's real tokenizer and a canned, instant generation.

For fuzzing the HTTP surface fast: tokenization, the chat template, detokenization and stop
strings are the real code (``tokenizers``, jinja2, :class:`IncrementalDecoder`); only the model
is replaced by a deterministic choice of next tokens. It imports no torch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from kaito_runtime.inference._detokenize import IncrementalDecoder
from kaito_runtime.inference._engine import (
    ChatMessage,
    GenerationDelta,
    GenerationRequest,
    ModelInfo,
    PromptError,
)

__all__ = ("TokenizerEngine",)


def _refuse(message: str) -> None:
    raise jinja2.TemplateError(message)


class TokenizerEngine:
    """Tokenize with the model's tokenizer; generate ``max_tokens`` tokens picked from the prompt."""

    def __init__(self, model_dir: Path, served_model_name: str) -> None:
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        template_file = model_dir / "chat_template.jinja"
        config = json.loads((model_dir / "tokenizer_config.json").read_text())
        source = template_file.read_text() if template_file.exists() else config["chat_template"]
        environment = ImmutableSandboxedEnvironment()
        environment.globals["raise_exception"] = _refuse
        self._template = environment.from_string(source)
        vocab = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self.info = ModelInfo(
            served_model_name=served_model_name,
            max_model_len=512,
            adapters=(),
            backend="fuzz",
            vocab_size=vocab,
        )

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text).ids)

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = self._template.render(messages=turns, add_generation_prompt=True)
        except jinja2.TemplateError as err:
            raise PromptError(f"the model's chat template refused the messages: {err}") from err
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        decoder = IncrementalDecoder(self.decode, request.sampling.stop)
        prompt = request.prompt_token_ids
        for step in range(request.sampling.max_tokens):
            token = prompt[(step * 7 + len(prompt)) % len(prompt)]
            text = decoder.add([token])
            if decoder.stopped:
                yield GenerationDelta(text=text, token_count=1, finish_reason="stop")
                return
            yield GenerationDelta(text=text, token_count=1)
        tail = decoder.add([], final=True)
        yield GenerationDelta(text=tail, token_count=0, finish_reason="length")

    def metrics_text(self) -> bytes:
        return b""
