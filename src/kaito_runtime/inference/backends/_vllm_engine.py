"""The vLLM backend: vLLM's ``AsyncLLM`` engine, driven in-process, with LoRA enabled.

Our HTTP surface (limits, ``/chat``, metrics) sits on top; vLLM's own OpenAI server is not used.
Engine arguments are parsed by vLLM's own argument parser from our flags plus the ConfigMap's
``vllm:`` entries (``key: value`` becomes ``--key value``; flags win), so every engine argument
vLLM knows is accepted with vLLM's own validation.

Strength: vLLM's LoRA path has no strength, so each adapter is served from a copy whose LoRA B is
scaled by the strength (see :mod:`~kaito_runtime.inference._lora_weights`) and registered as a
``LoRARequest`` named after the adapter; the served model name uses the exact combination of all
adapters at their strengths.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import structlog

from kaito_runtime.inference._config_file import EngineArgValue
from kaito_runtime.inference._engine import (
    ChatMessage,
    FinishReason,
    GenerationDelta,
    GenerationRequest,
    ModelInfo,
    PromptError,
)
from kaito_runtime.inference._errors import ConfigError
from kaito_runtime.inference._lora_weights import PreparedAdapters, prepare_adapters
from kaito_runtime.inference._settings import InferenceSettings
from kaito_runtime.standin import stand_in_label

__all__ = ("VLLMEngine", "engine_args", "engine_argv", "open_vllm_engine")

log = structlog.get_logger(__name__)

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_LORA_NAME = "__kaito_default__"
MAX_LORAS = 8


def _flag(key: str, value: EngineArgValue) -> list[str]:
    if value is True:
        return [f"--{key}"]
    if value is False:
        return [f"--no-{key}"]
    return [f"--{key}", str(value)]


def engine_argv(settings: InferenceSettings, prepared: PreparedAdapters) -> list[str]:
    """Return the vLLM engine arguments as command-line flags (flags win over the ConfigMap).

    Parallelism as upstream KAITO decides it from the SKU and the model: ``--data-parallel-size
    <GPUs> --tensor-parallel-size 1`` for a model that fits one GPU, ``--tensor-parallel-size
    <GPUs>`` for one that needs the node, plus ``--pipeline-parallel-size <nodes>
    --distributed-executor-backend ray`` across nodes.
    """
    argv = [
        "--model", settings.model,
        "--served-model-name", settings.served_model_name,
        "--dtype", settings.dtype,
        "--gpu-memory-utilization", str(settings.gpu_memory_utilization),
        "--tensor-parallel-size", str(settings.tensor_parallel_size),
        "--data-parallel-size", str(settings.data_parallel_size),
        "--pipeline-parallel-size", str(settings.pipeline_parallel_size),
    ]  # fmt: skip
    if settings.distributed_executor_backend is not None:
        argv += ["--distributed-executor-backend", settings.distributed_executor_backend]
    if settings.max_model_len is not None:
        argv += ["--max-model-len", str(settings.max_model_len)]
    elif not any(key == "max-model-len" for key, _ in settings.engine_args):
        # Neither a flag nor the ConfigMap sets it: vLLM picks the longest context whose KV
        # cache fits the GPU memory (upstream KAITO's --max-model-len=auto).
        argv += ["--max-model-len", "auto"]
    if settings.trust_remote_code:
        argv.append("--trust-remote-code")
    given = {a.removeprefix("--") for a in argv if a.startswith("--")}
    for key, value in settings.engine_args:
        if key not in given:
            argv += _flag(key, value)
    if prepared.by_name:
        rank = next((r for r in LORA_RANKS if r >= prepared.max_rank), None)
        if rank is None:
            raise ConfigError(
                "adapters",
                prepared.max_rank,
                f"the combined LoRA rank exceeds vLLM's maximum of {LORA_RANKS[-1]}",
                fix="serve fewer adapters at once or adapters of lower rank",
            )
        loras = min(len(prepared.by_name) + 1, MAX_LORAS)
        argv += ["--enable-lora", "--max-lora-rank", str(rank), "--max-loras", str(loras)]
    return argv


def engine_args(argv: list[str]) -> Any:
    """Parse engine flags with vLLM's own parser into ``AsyncEngineArgs``.

    Raises:
        ConfigError: vLLM refuses a flag (the message carries vLLM's complaint).
    """
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser(prog="vllm engine"))
    complaints = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaints):
            namespace = parser.parse_args(argv)
    except SystemExit as err:
        lines = [line for line in complaints.getvalue().splitlines() if line.strip()]
        reason = lines[-1].removeprefix("vllm engine: error: ") if lines else "refused"
        raise ConfigError(
            "vllm engine arguments",
            " ".join(argv),
            f"vLLM says: {reason}",
            fix="fix the flags or the vllm: entries of the inference ConfigMap",
        ) from err
    return AsyncEngineArgs.from_cli_args(namespace)


class VLLMEngine:
    """A running vLLM engine with its tokenizer and LoRA requests. Build it with
    :func:`open_vllm_engine`.
    """

    def __init__(
        self, *, llm: Any, info: ModelInfo, loras: dict[str, Any], default_lora: Any | None
    ) -> None:
        self._llm = llm
        self._tokenizer = llm.get_tokenizer()
        self._info = info
        self._loras = loras
        self._default = default_lora

    @property
    def info(self) -> ModelInfo:
        """Describe the served model."""
        return self._info

    @property
    def llm(self) -> Any:
        """The underlying ``AsyncLLM``."""
        return self._llm

    def encode(self, text: str) -> list[int]:
        """Tokenize a completion prompt."""
        return list(self._tokenizer.encode(text))

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Apply the model's chat template with the generation prompt, and tokenize."""
        from jinja2 import TemplateError

        turns = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = self._tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        except TemplateError as err:
            raise PromptError(f"the model's chat template refused the messages: {err}") from err
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        """Detokenize, skipping special tokens."""
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def metrics_text(self) -> bytes:
        """Return vLLM's own Prometheus metrics (``vllm:*``)."""
        from prometheus_client import generate_latest
        from vllm.v1.metrics.prometheus import get_prometheus_registry

        return bytes(generate_latest(get_prometheus_registry()))

    def lora_for(self, adapter: str | None) -> Any | None:
        """Return the ``LoRARequest`` serving ``adapter`` (``None``: the served model)."""
        return self._default if adapter is None else self._loras[adapter]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Stream deltas from vLLM; abort the request if the caller stops early."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        lora = self.lora_for(request.adapter)
        sampling = request.sampling
        params = SamplingParams(
            max_tokens=sampling.max_tokens,
            min_tokens=sampling.min_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
        )
        finished = False
        try:
            async for output in self._llm.generate(
                {"prompt_token_ids": list(request.prompt_token_ids)},
                params,
                request.request_id,
                lora_request=lora,
            ):
                completion = output.outputs[0]
                finish: FinishReason | None = None
                if output.finished:
                    finished = True
                    finish = "length" if completion.finish_reason == "length" else "stop"
                yield GenerationDelta(
                    text=completion.text,
                    token_count=len(completion.token_ids),
                    finish_reason=finish,
                )
        finally:
            if not finished:
                with anyio.CancelScope(shield=True):
                    await self._llm.abort(request.request_id)

    async def prompt_logprobs(
        self, token_ids: Sequence[int], adapter: str | None, request_id: str
    ) -> list[float]:
        """Return the log-probability of each prompt token after the first (verification)."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        final = None
        async for output in self._llm.generate(
            {"prompt_token_ids": list(token_ids)},
            params,
            request_id,
            lora_request=self.lora_for(adapter),
        ):
            final = output
        assert final is not None
        values = []
        for position, entry in enumerate(final.prompt_logprobs[1:], start=1):
            values.append(float(entry[token_ids[position]].logprob))
        return values


def _start(argv: list[str]) -> Any:
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(engine_args(argv))


@asynccontextmanager
async def open_vllm_engine(settings: InferenceSettings) -> AsyncIterator[VLLMEngine]:
    """Prepare the adapters, start vLLM's engine (in a worker thread) and register the LoRAs."""
    from vllm.lora.request import LoRARequest

    with tempfile.TemporaryDirectory(prefix="kaito-adapters-", dir=settings.workdir) as scratch:
        prepared = await anyio.to_thread.run_sync(
            prepare_adapters, settings.adapters, Path(scratch)
        )
        argv = engine_argv(settings, prepared)
        log.info("vllm_engine_starting", args=" ".join(argv))
        llm = await anyio.to_thread.run_sync(_start, argv)
        try:
            loras = {
                name: LoRARequest(name, index, str(weights.path))
                for index, (name, weights) in enumerate(prepared.by_name.items(), start=1)
            }
            default = None
            if prepared.default is not None:
                default = next(
                    (loras[n] for n, w in prepared.by_name.items() if w == prepared.default),
                    None,
                ) or LoRARequest(DEFAULT_LORA_NAME, len(loras) + 1, str(prepared.default.path))
            for request in {id(r): r for r in [*loras.values(), default] if r}.values():
                await llm.add_lora(request)
            info = ModelInfo(
                served_model_name=settings.served_model_name,
                max_model_len=int(llm.model_config.max_model_len),
                adapters=tuple(loras),
                backend="vllm",
                # ids the model embeds and the tokenizer decodes (vLLM refuses the others)
                vocab_size=min(int(llm.model_config.get_vocab_size()), len(llm.get_tokenizer())),
                stand_in=stand_in_label(getattr(llm.model_config, "hf_config", None)),
            )
            log.info(
                "model_loaded",
                backend="vllm",
                model=settings.model,
                max_model_len=info.max_model_len,
                adapters={a.name: a.strength for a in settings.adapters},
            )
            yield VLLMEngine(llm=llm, info=info, loras=loras, default_lora=default)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(llm.shutdown)
