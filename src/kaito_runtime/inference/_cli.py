"""``python -m kaito_runtime.inference`` / ``kaito-inference``: the inference pod's command.

Flags follow the controller's contract (``--model``, ``--served-model-name``, ``--port``,
``--adapters-dir``, ``--kaito-config-file``, ``--backend``, ``--dtype``, ``--max-model-len``,
``--gpu-memory-utilization``, ``--tensor-parallel-size``, ``--data-parallel-size``,
``--pipeline-parallel-size``, ``--distributed-executor-backend``, ``--trust-remote-code``); the
config file fills in what the flags leave unset; upstream's ``--flag=value`` spelling works too.
Invalid settings exit with status 2 and a one-line message, also written to the
termination-message file.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from kaito_runtime.adapters import write_termination_message
from kaito_runtime.contract import ADAPTER_DIR, INFERENCE_MODULE, SERVER_PORT, InferenceFlags
from kaito_runtime.inference._adapters import discover_adapters
from kaito_runtime.inference._config_file import KaitoConfig, load_kaito_config
from kaito_runtime.inference._errors import ConfigError
from kaito_runtime.inference._settings import (
    DISTRIBUTED_EXECUTOR_BACKENDS,
    InferenceSettings,
    Limits,
)
from kaito_runtime.logs import configure_logging

__all__ = ("build_parser", "main", "settings_from_args")

EXIT_CONFIG = 2
DEFAULT_ADAPTERS_DIR = ADAPTER_DIR


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    flags = InferenceFlags
    parser = argparse.ArgumentParser(
        prog=f"python -m {INFERENCE_MODULE}",
        description="KAITO inference server: OpenAI-compatible API and /chat, with LoRA adapters.",
    )
    parser.add_argument(flags.MODEL, required=True, help="model directory or Hugging Face id")
    parser.add_argument(flags.SERVED_MODEL_NAME, help="name clients use (default: from --model)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(flags.PORT, type=int, default=SERVER_PORT)
    parser.add_argument(flags.BACKEND, choices=flags.BACKENDS, default="auto")
    parser.add_argument(flags.DTYPE, default=None, help="auto, float32, bfloat16 or float16")
    parser.add_argument("--max-model-len", default=None, help="context length, or 'auto'")
    parser.add_argument(flags.GPU_MEMORY_UTILIZATION, type=float, default=None)
    parser.add_argument(
        flags.TENSOR_PARALLEL_SIZE, type=int, default=None, help="GPUs one model is split across"
    )
    parser.add_argument(
        flags.DATA_PARALLEL_SIZE, type=int, default=None, help="model replicas on this node's GPUs"
    )
    parser.add_argument(
        flags.PIPELINE_PARALLEL_SIZE, type=int, default=None, help="pipeline stages (nodes)"
    )
    parser.add_argument(
        flags.DISTRIBUTED_EXECUTOR_BACKEND,
        choices=DISTRIBUTED_EXECUTOR_BACKENDS,
        default=None,
        help="vLLM's workers: mp (this node), ray (across nodes); default: vLLM decides",
    )
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument(
        flags.ADAPTERS_DIR,
        "--kaito-adapters-dir",
        default=DEFAULT_ADAPTERS_DIR,
        help="each subdirectory holding adapter_config.json is an adapter named after it",
    )
    parser.add_argument(
        "--adapter-strength",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="strength of an adapter in [0, 1] (default: env var named after it, else 1.0)",
    )
    parser.add_argument(flags.CONFIG_FILE, default=None, help="inference_config.yaml")
    parser.add_argument(
        "--max-concurrent-requests", type=int, default=Limits().max_concurrent_requests
    )
    parser.add_argument("--max-tokens-limit", type=int, default=Limits().max_tokens)
    parser.add_argument("--max-body-bytes", type=int, default=Limits().max_body_bytes)
    parser.add_argument("--retry-after", type=int, default=Limits().retry_after_seconds)
    parser.add_argument(
        "--body-read-timeout",
        type=float,
        default=Limits().body_read_timeout,
        help="seconds a client has to send a request body (408 after); counted before admission",
    )
    parser.add_argument(
        "--max-stop-strings",
        type=int,
        default=Limits().max_stop_strings,
        help="most stop strings a request may send (vLLM's VLLM_MAX_STOP_STRINGS default)",
    )
    parser.add_argument(
        "--max-stop-string-chars",
        type=int,
        default=Limits().max_stop_string_chars,
        help="longest stop string, in characters",
    )
    parser.add_argument(
        "--stream-interval",
        type=float,
        default=InferenceSettings.__attrs_attrs__.stream_interval.default,
        help="seconds between streamed deltas after the first token (transformers backend)",
    )
    parser.add_argument("--log-format", choices=("console", "json"), default=None)
    return parser


def _positive(field: str, value: float | None) -> None:
    if value is not None and not value > 0:  # NaN too
        raise ConfigError(field, value, "must be positive", fix="pass a number above 0")


def _strength_overrides(items: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(
                "--adapter-strength", item, "not NAME=VALUE", fix="write e.g. my-adapter=0.5"
            )
        overrides[name] = value
    return overrides


def _max_model_len(args: argparse.Namespace, config: KaitoConfig) -> int | None:
    raw = args.max_model_len
    if raw is None:
        raw = config.engine_arg("max-model-len")
    if raw is None or str(raw).lower() == "auto":
        return None
    try:
        value = int(raw)
    except ValueError as err:
        raise ConfigError(
            "--max-model-len", raw, "not an integer", fix="pass a token count or 'auto'"
        ) from err
    _positive("--max-model-len", value)
    return value


def _number(arg: float | None, config: KaitoConfig, key: str, default: float) -> float:
    if arg is not None:
        return arg
    value = config.engine_arg(key)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError as err:
        raise ConfigError(f"vllm.{key}", value, "not a number", fix="fix the ConfigMap") from err


def _size(arg: int | None, config: KaitoConfig, key: str) -> int:
    """A parallelism degree from its flag or ``vllm.<key>``; a positive integer, default 1."""
    value = float(_number(None if arg is None else float(arg), config, key, 1))
    if not value.is_integer() or value < 1:
        shown = int(value) if value.is_integer() else value
        raise ConfigError(
            f"--{key}", shown, "must be a positive integer", fix="pass 1 or more (GPUs, nodes)"
        )
    return int(value)


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> InferenceSettings:
    """Build settings from parsed flags, the config file and the environment.

    Raises:
        ConfigError: a setting is invalid (the message names it and the fix).
    """
    env = os.environ if environ is None else environ
    config = load_kaito_config(Path(args.kaito_config_file)) if args.kaito_config_file else None
    config = config or KaitoConfig()
    gpu_util = _number(args.gpu_memory_utilization, config, "gpu-memory-utilization", 0.84)
    if not 0 < gpu_util <= 1:
        raise ConfigError(
            "--gpu-memory-utilization", gpu_util, "must lie in (0, 1]", fix="e.g. 0.84"
        )
    sizes = {
        key: _size(getattr(args, key.replace("-", "_")), config, key)
        for key in ("tensor-parallel-size", "data-parallel-size", "pipeline-parallel-size")
    }
    backend = args.distributed_executor_backend or config.engine_arg("distributed-executor-backend")
    if backend is not None and backend not in DISTRIBUTED_EXECUTOR_BACKENDS:
        raise ConfigError(
            "vllm.distributed-executor-backend",
            backend,
            "not a vLLM executor backend",
            fix=f"use one of: {', '.join(DISTRIBUTED_EXECUTOR_BACKENDS)}",
        )
    for field in (
        "max_concurrent_requests",
        "max_tokens_limit",
        "max_body_bytes",
        "body_read_timeout",
        "max_stop_strings",
        "max_stop_string_chars",
    ):
        _positive("--" + field.replace("_", "-"), getattr(args, field))
    dtype = args.dtype or str(config.engine_arg("dtype") or "auto")
    adapters = discover_adapters(
        Path(args.adapters_dir) if args.adapters_dir else None,
        environ=env,
        overrides=_strength_overrides(args.adapter_strength),
    )
    served = args.served_model_name or (
        Path(args.model).name if Path(args.model).is_dir() else args.model
    )
    return InferenceSettings(
        model=args.model,
        served_model_name=served,
        host=args.host,
        port=args.port,
        backend=args.backend,
        dtype=dtype,
        max_model_len=_max_model_len(args, config),
        gpu_memory_utilization=gpu_util,
        tensor_parallel_size=sizes["tensor-parallel-size"],
        data_parallel_size=sizes["data-parallel-size"],
        pipeline_parallel_size=sizes["pipeline-parallel-size"],
        distributed_executor_backend=None if backend is None else str(backend),
        trust_remote_code=bool(args.trust_remote_code or config.engine_arg("trust-remote-code")),
        adapters=adapters,
        engine_args=config.engine_args,
        max_probe_steps=config.max_probe_steps,
        kv_cache_cpu_memory_utilization=config.kv_cache_cpu_memory_utilization,
        stream_interval=max(0.0, args.stream_interval),
        limits=Limits(
            max_concurrent_requests=args.max_concurrent_requests,
            max_tokens=args.max_tokens_limit,
            max_body_bytes=args.max_body_bytes,
            retry_after_seconds=args.retry_after,
            body_read_timeout=args.body_read_timeout,
            max_stop_strings=args.max_stop_strings,
            max_stop_string_chars=args.max_stop_string_chars,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, bind the port, and serve; return the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(fmt=args.log_format)
    try:
        settings = settings_from_args(args)
    except ConfigError as err:
        message = f"inference server not started: {err}"
        print(message, file=sys.stderr)
        write_termination_message(message)
        return EXIT_CONFIG
    from kaito_runtime.inference._server import bind_socket, serve

    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as err:
        where = f"{settings.host}:{settings.port}"
        message = f"inference server not started: cannot listen on {where} ({err})"
        print(message, file=sys.stderr)
        write_termination_message(message)
        return EXIT_CONFIG
    # The event loop shares the process with generation threads whose Python code holds the GIL;
    # a 1 ms switch interval (default 5 ms) lets it answer and stream without waiting behind them.
    sys.setswitchinterval(0.001)
    use_uvloop = importlib.util.find_spec("uvloop") is not None  # faster loop when installed
    return anyio.run(lambda: serve(settings, sock=sock), backend_options={"use_uvloop": use_uvloop})
