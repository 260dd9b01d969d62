"""The transformers backend: ``AutoModelForCausalLM`` with PEFT adapters weighted by strength.

The CPU fallback, and what the tests run. Adapters are loaded with PEFT from the strength-scaled
copies :mod:`~kaito_runtime.inference._lora_weights` writes (one per adapter, plus their exact
"cat" combination for the served model name). One worker runs ``generate`` in a thread, one
request at a time, so switching adapters between requests is safe; tokens stream back to the
event loop as they are produced, and a request whose client has gone is stopped at the next
token.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from kaito_runtime.inference._detokenize import IncrementalDecoder
from kaito_runtime.inference._engine import (
    ChatMessage,
    FinishReason,
    GenerationDelta,
    GenerationRequest,
    ModelInfo,
    PromptError,
)
from kaito_runtime.inference._lora_weights import PreparedAdapters, prepare_adapters
from kaito_runtime.inference._settings import InferenceSettings
from kaito_runtime.standin import stand_in_label

__all__ = ("TransformersEngine", "open_transformers_engine")

log = structlog.get_logger(__name__)

DEFAULT_ADAPTER_KEY = "__kaito_default__"
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@attrs.define
class _Job:
    request: GenerationRequest
    send: MemoryObjectSendStream[GenerationDelta | BaseException]
    loop: asyncio.AbstractEventLoop
    # Set from the event loop when the request is gone; the worker stops at the next token.
    cancelled: threading.Event = attrs.field(factory=threading.Event)

    def deliver(self, delta: GenerationDelta) -> None:
        """Hand ``delta`` to the request (on the event loop); a closed request is cancelled."""
        try:
            self.send.send_nowait(delta)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.cancelled.set()

    def emit(self, delta: GenerationDelta) -> None:
        """From the worker thread: queue ``delta`` without waiting for the event loop.

        Callbacks run in order, and before the worker task resumes after the thread returns.
        """
        self.loop.call_soon_threadsafe(self.deliver, delta)


def _merge(first: GenerationDelta, later: GenerationDelta) -> GenerationDelta:
    return GenerationDelta(
        text=first.text + later.text,
        token_count=first.token_count + later.token_count,
        finish_reason=later.finish_reason,
    )


def _torch_dtype(name: str, on_gpu: bool) -> Any:
    import torch

    if name == "auto":
        if on_gpu:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, _DTYPES.get(name, name))


def _fallback_chat(messages: Sequence[ChatMessage]) -> str:
    lines = [f"{m.role}: {m.content}" for m in messages]
    return "\n".join([*lines, "assistant:"])


class TransformersEngine:
    """A loaded causal LM with its tokenizer and adapters. Build it with
    :func:`open_transformers_engine`.
    """

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        info: ModelInfo,
        adapter_keys: dict[str, str],
        default_key: str | None,
        jobs: MemoryObjectSendStream[_Job],
        stream_interval: float = 0.0,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._info = info
        self._adapter_keys = adapter_keys
        self._default_key = default_key
        self._jobs = jobs
        self._stream_interval = stream_interval
        self._lock = threading.Lock()
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    @property
    def info(self) -> ModelInfo:
        """Describe the served model."""
        return self._info

    @property
    def model(self) -> Any:
        """The loaded (PEFT-wrapped when adapters are present) model."""
        return self._model

    def encode(self, text: str) -> list[int]:
        """Tokenize a completion prompt."""
        return list(self._tokenizer(text)["input_ids"])

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Apply the chat template with the generation prompt, and tokenize."""
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self._tokenizer, "chat_template", None):
            from jinja2 import TemplateError

            try:
                text = self._tokenizer.apply_chat_template(
                    turns, add_generation_prompt=True, tokenize=False
                )
            except TemplateError as err:
                raise PromptError(f"the model's chat template refused the messages: {err}") from err
        else:
            text = _fallback_chat(messages)
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: Sequence[int]) -> str:
        """Detokenize, skipping special tokens."""
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def metrics_text(self) -> bytes:
        """Return nothing: the server's own metrics cover this backend."""
        return b""

    def _adapter_context(self, adapter: str | None) -> Any:
        key = self._default_key if adapter is None else self._adapter_keys[adapter]
        if not self._adapter_keys:  # no adapters: the model is not wrapped by PEFT
            return nullcontext()
        if key is None:
            return self._model.disable_adapter()
        self._model.set_adapter(key)
        return nullcontext()

    def logits(self, token_ids: Sequence[int], adapter: str | None = None) -> Any:
        """Return the next-token logits at every prompt position (tests and verification).

        Blocking: call it from a worker thread in async code.
        """
        import torch

        with self._lock, torch.inference_mode(), self._adapter_context(adapter):
            ids = torch.tensor([list(token_ids)], device=self._model.device)
            return self._model(input_ids=ids).logits[0].float().cpu()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Queue ``request`` for the worker and yield its deltas as they come."""
        if request.adapter is not None and request.adapter not in self._adapter_keys:
            raise KeyError(request.adapter)
        send, receive = anyio.create_memory_object_stream[GenerationDelta | BaseException](math.inf)
        job = _Job(request=request, send=send, loop=asyncio.get_running_loop())
        await self._jobs.send(job)
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, BaseException):
                        raise item
                    # Deltas that queued up while the consumer was busy go out as one.
                    merged = item
                    while merged.finish_reason is None:
                        try:
                            later = receive.receive_nowait()
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                        if isinstance(later, BaseException):
                            raise later
                        merged = _merge(merged, later)
                    yield merged
                    if merged.finish_reason is not None:
                        return
        finally:
            job.cancelled.set()

    # -- worker ------------------------------------------------------------------------------

    def run_job(self, job: _Job) -> None:
        """Run one generation in the calling (worker) thread, streaming deltas to ``job.send``."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        request = job.request
        sampling = request.sampling
        decoder = IncrementalDecoder(self.decode, sampling.stop)

        emit = job.emit

        interval = self._stream_interval

        class _Streamer(BaseStreamer):
            """Hand tokens to the request: the first at once, then at most every ``interval``."""

            def __init__(self) -> None:
                self.prompt_seen = False
                self.last: int | None = None
                self.text: list[str] = []
                self.tokens = 0
                self.flushed_at: float | None = None
                self.after_cancel = 0  # tokens finished after the request was cancelled

            def put(self, value: Any) -> None:
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                ids = [int(t) for t in value.reshape(-1).tolist()]
                if not ids:
                    return
                if job.cancelled.is_set():
                    self.after_cancel += len(ids)
                    return
                self.last = ids[-1]
                # Every generated token counts (an end-of-sequence one too, as in vLLM);
                # special tokens decode to no text.
                self.text.append(decoder.add(ids))
                self.tokens += len(ids)
                now = time.monotonic()
                if self.flushed_at is None or now - self.flushed_at >= interval:
                    self.flush(now)

            def flush(self, now: float) -> None:
                if self.tokens:
                    emit(GenerationDelta(text="".join(self.text), token_count=self.tokens))
                self.text, self.tokens, self.flushed_at = [], 0, now

            def end(self) -> None:
                pass

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = job.cancelled.is_set() or decoder.stopped
                return torch.full(
                    (input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device
                )

        streamer = _Streamer()
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "min_new_tokens": sampling.min_tokens or None,
            "repetition_penalty": sampling.repetition_penalty,
            "pad_token_id": self._tokenizer.pad_token_id,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Stop()]),
        }
        if sampling.temperature > 0:
            kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k or None,
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode(), self._adapter_context(request.adapter):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            ids = torch.tensor([list(request.prompt_token_ids)], device=self._model.device)
            self._model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        if job.cancelled.is_set():
            log.info(
                "generation_cancelled",
                request_id=request.request_id,
                tokens=decoder.token_count,
                tokens_after_cancel=streamer.after_cancel,
            )
            return
        streamer.flush(time.monotonic())
        tail = decoder.add([], final=True)
        finish: FinishReason
        if decoder.stopped or (streamer.last is not None and streamer.last in self._eos_ids):
            finish = "stop"
        elif decoder.token_count >= sampling.max_tokens:
            finish = "length"
        else:
            finish = "stop"
        emit(GenerationDelta(text=tail, token_count=0, finish_reason=finish))


async def _worker(engine: TransformersEngine, jobs: MemoryObjectReceiveStream[_Job]) -> None:
    async with jobs:
        async for job in jobs:
            if job.cancelled.is_set():
                job.send.close()
                continue
            try:
                await anyio.to_thread.run_sync(engine.run_job, job, abandon_on_cancel=False)
            except Exception as err:  # reported to the request that caused it
                log.exception("generation_failed", request_id=job.request.request_id)
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    job.send.send_nowait(err)
            finally:
                job.send.close()


def _load(settings: InferenceSettings, workdir: Path) -> tuple[Any, Any, PreparedAdapters, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    on_gpu = bool(torch.cuda.is_available())
    dtype = _torch_dtype(settings.dtype, on_gpu)
    tokenizer = AutoTokenizer.from_pretrained(
        settings.model, trust_remote_code=settings.trust_remote_code
    )
    model: Any = AutoModelForCausalLM.from_pretrained(
        settings.model,
        dtype=dtype,
        trust_remote_code=settings.trust_remote_code,
        device_map="auto" if on_gpu else None,
    )
    model.eval()
    prepared = prepare_adapters(settings.adapters, workdir)
    if prepared.by_name:
        from peft import PeftModel

        first, *rest = prepared.by_name.items()
        model = PeftModel.from_pretrained(model, str(first[1].path), adapter_name=first[0])
        for name, weights in rest:
            model.load_adapter(str(weights.path), adapter_name=name)
        if prepared.default is not None and prepared.default.path not in {
            w.path for w in prepared.by_name.values()
        }:
            model.load_adapter(str(prepared.default.path), adapter_name=DEFAULT_ADAPTER_KEY)
        model.eval()
    return model, tokenizer, prepared, str(dtype).removeprefix("torch.")


def _vocab_size(model: Any, tokenizer: Any) -> int:
    """Token ids both the tokenizer and the model's embedding know: ``[0, vocab_size)``."""
    rows = int(model.get_input_embeddings().num_embeddings)
    return min(rows, len(tokenizer))


def _context_length(settings: InferenceSettings, model: Any) -> int:
    if settings.max_model_len is not None:
        return settings.max_model_len
    config = getattr(model, "config", None)
    length = getattr(config, "max_position_embeddings", None)
    return int(length) if length else 2048


@asynccontextmanager
async def open_transformers_engine(
    settings: InferenceSettings,
) -> AsyncIterator[TransformersEngine]:
    """Load the model (in a worker thread) and run its generation worker until exit."""
    with tempfile.TemporaryDirectory(prefix="kaito-adapters-", dir=settings.workdir) as scratch:
        model, tokenizer, prepared, dtype = await anyio.to_thread.run_sync(
            _load, settings, Path(scratch)
        )
        keys = {name: name for name in prepared.by_name}
        default_key: str | None = None
        if prepared.default is not None:
            default_key = next(
                (n for n, w in prepared.by_name.items() if w.path == prepared.default.path),
                DEFAULT_ADAPTER_KEY,
            )
        info = ModelInfo(
            served_model_name=settings.served_model_name,
            max_model_len=_context_length(settings, model),
            adapters=tuple(prepared.by_name),
            backend="transformers",
            vocab_size=_vocab_size(model, tokenizer),
            stand_in=stand_in_label(getattr(model, "config", None)),
        )
        send, receive = anyio.create_memory_object_stream[_Job](math.inf)
        engine = TransformersEngine(
            model=model,
            tokenizer=tokenizer,
            info=info,
            adapter_keys=keys,
            default_key=default_key,
            jobs=send,
            stream_interval=settings.stream_interval,
        )
        log.info(
            "model_loaded",
            backend="transformers",
            model=settings.model,
            dtype=dtype,
            max_model_len=info.max_model_len,
            adapters={a.name: a.strength for a in settings.adapters},
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(_worker, engine, receive)
            try:
                yield engine
            finally:
                send.close()
