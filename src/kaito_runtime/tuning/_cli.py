"""``python -m kaito_runtime.tuning``: the tuning Job's main container, also runnable by hand.

Runtime layer. Flags fall back to upstream's environment and paths: ``--config`` to
``$YAML_FILE_PATH`` then ``/mnt/config/training_config.yaml`` (upstream's template for
``--method`` when that default file is absent), ``--data-dir`` to ``$DATASET_FOLDER_PATH`` then
``/mnt/data``, ``--output-dir`` to ``TrainingArguments.output_dir`` then ``/mnt/results``.

Started once per GPU (``python -m kaito_runtime.launch tuning`` or ``accelerate launch -m
kaito_runtime.tuning``), every process runs this command; only rank 0 serves ``/progress`` and
writes the outputs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import structlog

from kaito_runtime.contract import (
    DATA_DIR,
    RESULTS_DIR,
    SERVER_PORT,
    TUNING_CONFIG_PATH,
    TUNING_MODULE,
    TuningFlags,
)
from kaito_runtime.logs import configure_logging
from kaito_runtime.tuning._config import (
    Method,
    TuningConfig,
    default_target_modules,
    load_config,
)
from kaito_runtime.tuning._distributed import Ranks
from kaito_runtime.tuning._progress import ProgressServer, ProgressTracker
from kaito_runtime.tuning._termination import ConfigError, run_main

__all__ = ("DEFAULT_CONFIG", "DEFAULT_METRICS_PORT", "build_parser", "main")

log = structlog.get_logger(__name__)

DEFAULT_CONFIG = Path(TUNING_CONFIG_PATH)
DEFAULT_DATA_DIR = Path(DATA_DIR)
DEFAULT_OUTPUT_DIR = Path(RESULTS_DIR)
DEFAULT_METRICS_PORT = SERVER_PORT


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {TUNING_MODULE}",
        description="Tune a LoRA/QLoRA adapter with TRL's SFTTrainer and write it for pushing.",
    )
    flags = TuningFlags
    parser.add_argument(flags.CONFIG, type=Path, help="training_config.yaml (tuning ConfigMap)")
    parser.add_argument(flags.DATA_DIR, type=Path, help="directory holding the dataset")
    parser.add_argument(flags.OUTPUT_DIR, type=Path, help="where the adapter is written")
    parser.add_argument(flags.MODEL, help="base model directory or Hugging Face id")
    parser.add_argument(flags.PRESET, help="preset name (metadata, image annotation, defaults)")
    parser.add_argument(flags.METHOD, choices=flags.METHODS, help="default: from the config")
    parser.add_argument(
        flags.CHECKPOINT_DIR, type=Path, help="checkpoint directory (default OUTPUT/checkpoints)"
    )
    parser.add_argument(
        flags.HOST,
        default="0.0.0.0",
        help="address /progress and /metrics bind (the controller gives the Pod's IP)",
    )
    parser.add_argument(
        flags.METRICS_PORT,
        type=int,
        default=DEFAULT_METRICS_PORT,
        help="port serving /progress and /metrics (0 disables)",
    )
    return parser


def _config_path(flag: Path | None) -> Path | None:
    """The config file to read, or None for the built-in template (default path absent)."""
    if flag is not None:
        return flag
    env = os.environ.get("YAML_FILE_PATH")
    if env:
        return Path(env)
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    log.info("tuning_config_default_template", looked_at=str(DEFAULT_CONFIG))
    return None


def load_run_config(args: argparse.Namespace) -> TuningConfig:
    """The tuning config the parsed ``args`` name (file or built-in template), checked.

    Raises:
        ConfigError: the file is unreadable or invalid, or disagrees with ``--method``.
    """
    method = cast(Method | None, args.method)
    return load_config(
        _config_path(args.config), method, target_modules=default_target_modules(args.preset)
    )


def _run(args: argparse.Namespace, ranks: Ranks) -> str:
    from kaito_runtime.tuning._train import TuningSettings, run_tuning

    config = load_run_config(args)
    model = args.model or config.model.pretrained_model_name_or_path
    if not model:
        raise ConfigError(
            "no base model: pass --model DIR-or-HF-id or set "
            "ModelConfig.pretrained_model_name_or_path in the tuning ConfigMap"
        )
    output_dir = args.output_dir or Path(config.training.get("output_dir") or DEFAULT_OUTPUT_DIR)
    data_dir = args.data_dir or Path(os.environ.get("DATASET_FOLDER_PATH") or DEFAULT_DATA_DIR)
    settings = TuningSettings(
        config=config,
        data_dir=data_dir,
        output_dir=output_dir,
        model=str(model),
        method=cast(Method | None, args.method) or config.method,
        checkpoint_dir=args.checkpoint_dir or output_dir / "checkpoints",
        preset=args.preset,
        checkpoint_explicit=args.checkpoint_dir is not None,
        ranks=ranks,
    )
    # One process of the run publishes progress (its token counts cover every process).
    tracker = ProgressTracker(
        output_dir if ranks.is_main else None,
        processes=ranks.world_size,
        log_events=ranks.is_main,
    )
    serve = args.metrics_port and ranks.is_main
    server = ProgressServer(tracker, host=args.host, port=args.metrics_port) if serve else None
    try:
        result = run_tuning(settings, tracker)
    except BaseException as exc:
        tracker.update(phase="failed", message=" ".join(str(exc).split())[:500] or repr(exc))
        raise
    finally:
        if server is not None:
            server.close()
        tracker.close()
    return result.summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run a tuning job and return the exit code (the termination message is written)."""
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        ranks = Ranks.from_env()
    except ConfigError as exc:
        error = exc

        def refuse() -> str:
            raise error

        return run_main(refuse)
    if ranks.distributed:
        structlog.contextvars.bind_contextvars(rank=ranks.rank)
    return run_main(lambda: _run(args, ranks), rank=ranks.rank)
