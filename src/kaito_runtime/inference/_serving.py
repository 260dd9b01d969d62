"""Serving logic: validated requests to engine calls, and engine output to API responses.

Between the HTTP wiring (``app``) and the engine: resolves the model/adapter, tokenizes, checks
the prompt against the context and ``max_tokens`` against the limit, records token metrics, and
shapes OpenAI and legacy responses (JSON or server-sent events).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import attrs
import structlog

from kaito_runtime.inference._engine import (
    ChatMessage,
    Engine,
    GenerationDelta,
    GenerationRequest,
    PromptError,
    SamplingOptions,
)
from kaito_runtime.inference._errors import EngineUnavailableError, RequestError
from kaito_runtime.inference._metrics import ServerMetrics
from kaito_runtime.inference._protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    LegacyChatRequest,
    LegacyGenerateKwargs,
    OpenAIMessage,
)
from kaito_runtime.inference._settings import Limits

__all__ = ("Completed", "EngineHolder", "Serving", "shown")

log = structlog.get_logger(__name__)

# Tokenizing longer texts goes to a worker thread so the event loop stays responsive.
INLINE_TOKENIZE_CHARS = 4000
# Below this, temperature divides logits into infinities; vLLM raises it to this value too.
MIN_TEMPERATURE = 0.01
# How much of a client's value an error message repeats.
SHOWN_CHARS = 60


def shown(value: object) -> str:
    """Return ``repr(value)`` cut to a few dozen characters, for error messages."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


@attrs.define
class EngineHolder:
    """The engine once loaded; ``failure`` says why it is not, after a failed load."""

    engine: Engine | None = None
    failure: str | None = None

    def require(self) -> Engine:
        """Return the engine, or raise :class:`EngineUnavailableError` (503)."""
        if self.engine is None:
            raise EngineUnavailableError(self.failure or "the model is still loading")
        return self.engine


@attrs.frozen
class Completed:
    """A finished, non-streamed generation."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@attrs.frozen
class _Prepared:
    engine: Engine
    request: GenerationRequest
    model: str


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _stop_strings(stop: str | list[str] | None, limits: Limits) -> tuple[str, ...]:
    """Return the stop strings, within the server's caps on their number and length."""
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if len(stops) > limits.max_stop_strings:
        raise RequestError(
            f"stop holds {len(stops)} strings; this server takes at most "
            f"{limits.max_stop_strings} (--max-stop-strings); send fewer",
            param="stop",
        )
    for index, text in enumerate(stops):
        field = "stop" if isinstance(stop, str) else f"stop[{index}]"
        if not text:
            raise RequestError(
                f"{field} is an empty string, which would stop at once; remove it", param="stop"
            )
        if len(text) > limits.max_stop_string_chars:
            raise RequestError(
                f"{field}={shown(text)} is longer than this server's limit of "
                f"{limits.max_stop_string_chars} characters (--max-stop-string-chars); "
                "send a shorter stop string",
                param="stop",
            )
    return tuple(stops)


def _token_ids(ids: list[int], vocab_size: int) -> list[int]:
    """Return ``ids`` if every one is a token id of the model, else refuse naming the first bad."""
    for index, token in enumerate(ids):
        if not 0 <= token < vocab_size:
            raise RequestError(
                f"prompt[{index}]={shown(token)} is out of vocabulary: token ids of this model "
                f"lie in [0, {vocab_size - 1}]",
                param="prompt",
            )
    return ids


def _top_k(top_k: int | None, vocab_size: int) -> int:
    """``top_k`` as the engines take it: 0 (off) for -1, None, or at least the vocabulary."""
    if top_k is None or top_k <= 0 or top_k >= vocab_size:
        return 0
    return top_k


def _temperature(value: float) -> float:
    return value if value == 0 else max(value, MIN_TEMPERATURE)


def _message_text(message: OpenAIMessage, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    parts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise RequestError(
                f"messages[{index}].content has a {part.type!r} part; this model takes text "
                "parts only",
                param=f"messages[{index}].content",
            )
        parts.append(part.text)
    return "".join(parts)


class Serving:
    """Turn API requests into generations on the engine held by ``holder``."""

    def __init__(
        self,
        holder: EngineHolder,
        limits: Limits,
        metrics: ServerMetrics,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.holder = holder
        self.limits = limits
        self.metrics = metrics
        self.clock = clock
        self.wall_clock = wall_clock

    # -- shared steps --------------------------------------------------------------------------

    def _resolve(self, engine: Engine, model: str | None) -> tuple[str | None, str]:
        info = engine.info
        if model is None or model == info.served_model_name:
            return None, info.served_model_name
        if model in info.adapters:
            return model, model
        served = ", ".join([info.served_model_name, *info.adapters])
        raise RequestError(
            f"model {shown(model)} is not served here; use one of: {served}",
            status=404,
            param="model",
            code="model_not_found",
        )

    async def _tokenize(self, fn: Callable[[Any], list[int]], arg: Any, size: int) -> list[int]:
        if size <= INLINE_TOKENIZE_CHARS:
            return fn(arg)
        return await anyio.to_thread.run_sync(fn, arg)

    async def _render(
        self, engine: Engine, messages: Sequence[ChatMessage], size: int
    ) -> list[int]:
        try:
            return await self._tokenize(engine.render_chat, messages, size)
        except PromptError as err:
            raise RequestError(str(err), param="messages") from err

    def _budget(self, engine: Engine, prompt_len: int, requested: int | None, default: int) -> int:
        context = engine.info.max_model_len
        if prompt_len >= context:
            raise RequestError(
                f"the prompt is {prompt_len} tokens but the model's context is {context} tokens; "
                "shorten the prompt",
                param="messages",
                code="context_length_exceeded",
            )
        room = context - prompt_len
        if requested is None:
            return max(1, min(default, self.limits.max_tokens, room))
        if requested > self.limits.max_tokens:
            raise RequestError(
                f"max_tokens={requested} exceeds this server's limit of {self.limits.max_tokens}; "
                f"ask for at most {self.limits.max_tokens}",
                param="max_tokens",
            )
        if requested > room:
            raise RequestError(
                f"the prompt ({prompt_len} tokens) plus max_tokens={requested} exceeds the "
                f"model's context of {context} tokens; ask for at most {room} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested

    def _sampling(
        self, engine: Engine, req: CompletionRequest | ChatCompletionRequest, max_tokens: int
    ) -> SamplingOptions:
        if req.n != 1:
            raise RequestError(f"n={req.n} is not supported; use n=1", param="n")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(req, name):
                raise RequestError(
                    f"{name} is not supported by this server; use repetition_penalty", param=name
                )
        if req.logprobs:
            raise RequestError("logprobs are not returned by this server", param="logprobs")
        return SamplingOptions(
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else _temperature(req.temperature),
            top_p=1.0 if req.top_p is None else req.top_p,
            top_k=_top_k(req.top_k, engine.info.vocab_size),
            min_tokens=min(req.min_tokens, max_tokens),
            repetition_penalty=req.repetition_penalty or 1.0,
            seed=req.seed,
            stop=_stop_strings(req.stop, self.limits),
        )

    async def _run(self, prepared: _Prepared) -> AsyncIterator[GenerationDelta]:
        """Stream the generation, recording time to first token and token counts."""
        started = self.clock()
        first = True
        generated = 0
        self.metrics.prompt_tokens.inc(len(prepared.request.prompt_token_ids))
        try:
            async for delta in prepared.engine.generate(prepared.request):
                if first and delta.token_count:
                    first = False
                    self.metrics.time_to_first_token.observe(self.clock() - started)
                generated += delta.token_count
                yield delta
        finally:
            self.metrics.generation_tokens.inc(generated)

    async def collect(self, prepared: _Prepared) -> Completed:
        """Run a generation to its end."""
        parts: list[str] = []
        tokens = 0
        finish = "stop"
        async for delta in self._run(prepared):
            parts.append(delta.text)
            tokens += delta.token_count
            if delta.finish_reason is not None:
                finish = delta.finish_reason
        return Completed(
            text="".join(parts),
            prompt_tokens=len(prepared.request.prompt_token_ids),
            completion_tokens=tokens,
            finish_reason=finish,
        )

    def _usage(self, prompt: int, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    # -- OpenAI completions --------------------------------------------------------------------

    async def prepare_completion(self, req: CompletionRequest) -> tuple[_Prepared, str]:
        """Validate and tokenize a completion request; return it and its prompt text."""
        engine = self.holder.require()
        adapter, model = self._resolve(engine, req.model)
        prompt: str | list[int]
        strings = (
            [p for p in req.prompt if isinstance(p, str)] if isinstance(req.prompt, list) else []
        )
        if strings:
            if len(req.prompt) != 1:
                raise RequestError(
                    f"prompt holds {len(req.prompt)} prompts; send one prompt per request",
                    param="prompt",
                )
            prompt = strings[0]
        else:
            prompt = req.prompt  # type: ignore[assignment]
        if isinstance(prompt, str):
            if not prompt:
                raise RequestError("prompt is empty; send some text", param="prompt")
            ids = await self._tokenize(engine.encode, prompt, len(prompt))
        else:
            ids = _token_ids([int(t) for t in prompt], engine.info.vocab_size)
            if not ids:
                raise RequestError("prompt is empty; send some text", param="prompt")
        max_tokens = self._budget(engine, len(ids), req.max_tokens, default=16)
        request = GenerationRequest(
            request_id=f"cmpl-{uuid.uuid4().hex}",
            prompt_token_ids=tuple(ids),
            sampling=self._sampling(engine, req, max_tokens),
            adapter=adapter,
        )
        # The prompt's text is needed only to echo it (and is decoded only once it fits).
        text = prompt if isinstance(prompt, str) else engine.decode(ids) if req.echo else ""
        return _Prepared(engine=engine, request=request, model=model), text

    async def completion(self, req: CompletionRequest) -> dict[str, Any]:
        """Answer a non-streamed completion."""
        prepared, prompt_text = await self.prepare_completion(req)
        done = await self.collect(prepared)
        return {
            "id": prepared.request.request_id,
            "object": "text_completion",
            "created": int(self.wall_clock()),
            "model": prepared.model,
            **_stand_in_fields(prepared.engine),
            "choices": [
                {
                    "index": 0,
                    "text": (prompt_text if req.echo else "") + done.text,
                    "logprobs": None,
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": self._usage(done.prompt_tokens, done.completion_tokens),
        }

    async def completion_stream(
        self, prepared: _Prepared, prompt_text: str, req: CompletionRequest
    ) -> AsyncIterator[bytes]:
        """Stream a completion as server-sent events."""
        rid, model, created = prepared.request.request_id, prepared.model, int(self.wall_clock())

        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            }

        if req.echo:
            yield _sse(chunk(prompt_text, None))
        tokens = 0
        async for delta in self._stream_guard(self._run(prepared)):
            if isinstance(delta, bytes):
                yield delta
                return
            tokens += delta.token_count
            if delta.text or delta.finish_reason:
                yield _sse(chunk(delta.text, delta.finish_reason))
        if req.stream_options and req.stream_options.include_usage:
            usage = chunk("", None)
            usage["choices"] = []
            usage["usage"] = self._usage(len(prepared.request.prompt_token_ids), tokens)
            yield _sse(usage)
        yield b"data: [DONE]\n\n"

    # -- OpenAI chat ---------------------------------------------------------------------------

    async def prepare_chat(self, req: ChatCompletionRequest) -> _Prepared:
        """Validate, render the chat template and tokenize a chat request."""
        engine = self.holder.require()
        adapter, model = self._resolve(engine, req.model)
        messages = [
            ChatMessage(role=m.role, content=_message_text(m, i))
            for i, m in enumerate(req.messages)
        ]
        size = sum(len(m.content) for m in messages)
        ids = await self._render(engine, messages, size)
        requested = req.max_completion_tokens or req.max_tokens
        max_tokens = self._budget(engine, len(ids), requested, default=self.limits.max_tokens)
        request = GenerationRequest(
            request_id=f"chatcmpl-{uuid.uuid4().hex}",
            prompt_token_ids=tuple(ids),
            sampling=self._sampling(engine, req, max_tokens),
            adapter=adapter,
        )
        return _Prepared(engine=engine, request=request, model=model)

    async def chat(self, req: ChatCompletionRequest) -> dict[str, Any]:
        """Answer a non-streamed chat completion."""
        prepared = await self.prepare_chat(req)
        done = await self.collect(prepared)
        return {
            "id": prepared.request.request_id,
            "object": "chat.completion",
            "created": int(self.wall_clock()),
            "model": prepared.model,
            **_stand_in_fields(prepared.engine),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "logprobs": None,
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": self._usage(done.prompt_tokens, done.completion_tokens),
        }

    async def chat_stream(
        self, prepared: _Prepared, req: ChatCompletionRequest
    ) -> AsyncIterator[bytes]:
        """Stream a chat completion as server-sent events."""
        rid, model, created = prepared.request.request_id, prepared.model, int(self.wall_clock())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        yield _sse(chunk({"role": "assistant", "content": ""}, None))
        tokens = 0
        async for delta in self._stream_guard(self._run(prepared)):
            if isinstance(delta, bytes):
                yield delta
                return
            tokens += delta.token_count
            if delta.text:
                yield _sse(chunk({"content": delta.text}, None))
            if delta.finish_reason:
                yield _sse(chunk({}, delta.finish_reason))
        if req.stream_options and req.stream_options.include_usage:
            usage = chunk({}, None)
            usage["choices"] = []
            usage["usage"] = self._usage(len(prepared.request.prompt_token_ids), tokens)
            yield _sse(usage)
        yield b"data: [DONE]\n\n"

    async def _stream_guard(
        self, deltas: AsyncIterator[GenerationDelta]
    ) -> AsyncIterator[GenerationDelta | bytes]:
        """Pass deltas through; an engine failure mid-stream becomes one error event."""
        try:
            async for delta in deltas:
                yield delta
        except Exception as err:
            log.exception("stream_failed")
            yield _sse({"error": {"message": f"generation failed: {err}", "type": "server_error"}})

    # -- legacy /chat ----------------------------------------------------------------------------

    async def prepare_legacy(self, req: LegacyChatRequest) -> tuple[_Prepared, str]:
        """Validate and tokenize a legacy ``/chat`` request; return it and the prompt text."""
        engine = self.holder.require()
        adapter, model = self._resolve(engine, req.model)
        if (req.prompt is None) == (req.messages is None):
            raise RequestError(
                "send exactly one of 'prompt' (text generation) or 'messages' (conversation)",
                param="prompt",
            )
        kwargs = req.generate_kwargs or LegacyGenerateKwargs()
        if kwargs.num_beams != 1:
            raise RequestError(
                f"generate_kwargs.num_beams={kwargs.num_beams} is not supported; use num_beams=1",
                param="generate_kwargs.num_beams",
            )
        prompt_text = ""
        if req.prompt is not None:
            if not req.prompt:
                raise RequestError("prompt is empty; send some text", param="prompt")
            prompt_text = (req.prefix or "") + req.prompt
            ids = await self._tokenize(engine.encode, prompt_text, len(prompt_text))
        else:
            assert req.messages is not None
            if not req.messages:
                raise RequestError("messages is empty; send at least one message", param="messages")
            messages: Sequence[ChatMessage] = [
                ChatMessage(role=m.role, content=m.content) for m in req.messages
            ]
            size = sum(len(m.content) for m in messages)
            ids = await self._render(engine, messages, size)
        if kwargs.max_new_tokens is not None:
            requested = kwargs.max_new_tokens
        else:
            requested = kwargs.max_length - len(ids)
            if requested < 1:
                raise RequestError(
                    f"the prompt is {len(ids)} tokens and generate_kwargs.max_length="
                    f"{kwargs.max_length} counts the prompt too; raise max_length above "
                    f"{len(ids)} or pass max_new_tokens",
                    param="generate_kwargs.max_length",
                )
        max_tokens = self._budget(engine, len(ids), requested, default=requested)
        sampling = SamplingOptions(
            max_tokens=max_tokens,
            temperature=_temperature(kwargs.temperature) if kwargs.do_sample else 0.0,
            top_p=kwargs.top_p,
            top_k=_top_k(kwargs.top_k, engine.info.vocab_size),
            min_tokens=min(max(0, kwargs.min_length - len(ids)), max_tokens),
            repetition_penalty=kwargs.repetition_penalty,
            seed=kwargs.seed,
        )
        request = GenerationRequest(
            request_id=f"chat-{uuid.uuid4().hex}",
            prompt_token_ids=tuple(ids),
            sampling=sampling,
            adapter=adapter,
        )
        return _Prepared(engine=engine, request=request, model=model), prompt_text

    async def legacy_chat(self, req: LegacyChatRequest) -> dict[str, Any]:
        """Answer ``/chat`` as ``{"Result": text}``."""
        prepared, prompt_text = await self.prepare_legacy(req)
        done = await self.collect(prepared)
        text = (
            prompt_text + done.text
            if req.prompt is not None and req.return_full_text
            else done.text
        )
        note = prepared.engine.info.stand_in
        return {"Result": text, "stand_in": note} if note else {"Result": text}


def _stand_in_fields(engine: Engine) -> dict[str, Any]:
    """An OpenAI answer's metadata when the model is a stand-in: ``system_fingerprint`` names it,
    ``kaito_stand_in`` says what it is (clients keep unknown fields)."""
    note = engine.info.stand_in
    return {"system_fingerprint": "kaito-stand-in", "kaito_stand_in": note} if note else {}
