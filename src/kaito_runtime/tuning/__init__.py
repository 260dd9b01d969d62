"""LoRA and QLoRA fine-tuning: what the tuning Job's main container runs.

Runtime layer (``python -m kaito_runtime.tuning``). Importing this package is cheap: the ML stack
(torch, transformers, peft, trl) is imported only when training starts.
"""

from __future__ import annotations

from kaito_runtime.tuning._cli import build_parser, load_run_config, main
from kaito_runtime.tuning._rank_results import (
    RANK_RESULTS_ENV,
    RankResult,
    merge_rank_results,
    read_rank_results,
)
from kaito_runtime.tuning._termination import (
    ActionableError,
    ConfigError,
    InputError,
    OutputError,
    ResourceError,
    run_main,
)

__all__ = (
    "RANK_RESULTS_ENV",
    "ActionableError",
    "ConfigError",
    "InputError",
    "OutputError",
    "RankResult",
    "ResourceError",
    "build_parser",
    "load_run_config",
    "main",
    "merge_rank_results",
    "read_rank_results",
    "run_main",
)
