"""Adapter discovery: each subdirectory of the adapters directory holding an adapter.

As in upstream KAITO, the adapter is named after its directory (``/mnt/adapter/<name>``) and its
strength comes from the environment variable named after the adapter (default 1.0); an explicit
``--adapter-strength NAME=VALUE`` wins over the environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from kaito_runtime.inference._errors import ConfigError

__all__ = ("ADAPTER_CONFIG", "AdapterSpec", "discover_adapters", "parse_strength")

ADAPTER_CONFIG = "adapter_config.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@attrs.frozen
class AdapterSpec:
    """One adapter to serve: its name (the OpenAI ``model``), directory and strength in [0, 1]."""

    name: str
    path: Path
    strength: float = 1.0


def parse_strength(name: str, text: str, source: str) -> float:
    """Parse a strength for adapter ``name`` from ``source``; it must lie in [0, 1].

    Raises:
        ConfigError: not a number, or outside [0, 1].
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            source,
            text,
            f"the strength of adapter {name!r} must be a number in [0, 1]",
            fix="use 0 (off) to 1 (full adapter), e.g. 0.5",
        )
    return value


def discover_adapters(
    adapters_dir: Path | None,
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> tuple[AdapterSpec, ...]:
    """List the adapters under ``adapters_dir`` with their strengths, sorted by name.

    A missing directory means no adapters. ``overrides`` maps names to strength text from
    ``--adapter-strength``; naming an adapter that does not exist is an error.

    Raises:
        ConfigError: a strength is invalid, an adapter name is unusable, or an override names
            no adapter.
    """
    overrides = dict(overrides or {})
    found: list[AdapterSpec] = []
    if adapters_dir is not None and adapters_dir.is_dir():
        for child in sorted(adapters_dir.iterdir()):
            if not (child / ADAPTER_CONFIG).is_file():
                continue
            name = child.name
            if not _NAME.match(name):
                raise ConfigError(
                    "adapter directory",
                    str(child),
                    "the name is not usable as a model name",
                    fix="use letters, digits, '.', '_' and '-'",
                )
            if name in overrides:
                strength = parse_strength(name, overrides.pop(name), f"--adapter-strength {name}")
            elif name in environ:
                strength = parse_strength(name, environ[name], f"environment variable {name}")
            else:
                strength = 1.0
            found.append(AdapterSpec(name=name, path=child, strength=strength))
    if overrides:
        unknown = sorted(overrides)
        known = [a.name for a in found] or ["none found"]
        raise ConfigError(
            "--adapter-strength",
            ",".join(unknown),
            f"no adapter of that name under {adapters_dir}",
            fix=f"name one of: {', '.join(known)}",
        )
    return tuple(found)
