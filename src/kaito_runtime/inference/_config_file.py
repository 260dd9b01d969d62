"""The inference ConfigMap file (``inference_config.yaml``) the controller mounts.

Top-level ``max_probe_steps`` and ``kv_cache_cpu_memory_utilization``, and a ``vllm:`` map whose
``key: value`` entries become engine arguments (``--key value``), as in upstream KAITO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import yaml

from kaito_runtime.inference._errors import ConfigError

__all__ = ("KaitoConfig", "load_kaito_config")

EngineArgValue = str | int | float | bool


@attrs.frozen
class KaitoConfig:
    """What the config file says; defaults are upstream's."""

    max_probe_steps: int = 6
    kv_cache_cpu_memory_utilization: float = 0.5
    engine_args: tuple[tuple[str, EngineArgValue], ...] = ()

    def engine_arg(self, key: str) -> EngineArgValue | None:
        """Return the ``vllm.<key>`` entry (dashes or underscores), or ``None``."""
        wanted = key.replace("_", "-")
        for name, value in self.engine_args:
            if name == wanted:
                return value
        return None


def _number(document: dict[str, Any], key: str, default: float, path: Path) -> float:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{path}:{key}", value, "not a number", fix=f"set {key} to a number or remove it"
        )
    return float(value)


def load_kaito_config(path: Path) -> KaitoConfig:
    """Read and validate ``inference_config.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or a value has the wrong type.
    """
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as err:
        raise ConfigError(
            "--kaito-config-file",
            str(path),
            "the file does not exist",
            fix="mount the inference ConfigMap there or drop the flag",
        ) from err
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            "--kaito-config-file", str(path), f"not readable YAML ({err})", fix="fix the ConfigMap"
        ) from err
    if not isinstance(document, dict):
        raise ConfigError(
            "--kaito-config-file", str(path), "not a YAML mapping", fix="fix the ConfigMap"
        )
    engine = document.get("vllm") or {}
    if not isinstance(engine, dict):
        raise ConfigError(
            f"{path}:vllm", engine, "not a mapping", fix="write vllm: as key: value entries"
        )
    args: list[tuple[str, EngineArgValue]] = []
    for key, value in engine.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(
                f"{path}:vllm.{key}",
                value,
                "not a scalar",
                fix="engine arguments are flag values: strings, numbers or booleans",
            )
        args.append((str(key).replace("_", "-"), value))
    steps = _number(document, "max_probe_steps", 6, path)
    return KaitoConfig(
        max_probe_steps=int(steps),
        kv_cache_cpu_memory_utilization=_number(
            document, "kv_cache_cpu_memory_utilization", 0.5, path
        ),
        engine_args=tuple(args),
    )
