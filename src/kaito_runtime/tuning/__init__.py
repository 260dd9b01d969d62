"""LoRA and QLoRA fine-tuning: what the tuning Job's main container runs.

Runtime layer (``python -m kaito_runtime.tuning``). Importing this package is cheap: the ML stack
(torch, transformers, peft, trl) is imported only when training starts.
"""

from __future__ import annotations

from kaito_runtime.tuning.termination import (
    ActionableError,
    ConfigError,
    InputError,
    OutputError,
    ResourceError,
    run_main,
)

__all__ = (
    "ActionableError",
    "ConfigError",
    "InputError",
    "OutputError",
    "ResourceError",
    "run_main",
)
