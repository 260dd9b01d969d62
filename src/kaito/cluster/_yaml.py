"""YAML responses (``Accept: application/yaml``); request bodies are decoded by
``kaito.apimachinery``."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ("dump_yaml",)


def dump_yaml(value: Any) -> bytes:
    """Serialise as block-style YAML (the ``application/yaml`` responses)."""
    return yaml.dump(
        value, Dumper=yaml.CSafeDumper, default_flow_style=False, sort_keys=False
    ).encode()
