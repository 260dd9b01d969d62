"""The default parameter ConfigMaps KAITO installs in its release namespace.

API layer (pure data). Workspaces that leave ``inference.config`` or ``tuning.config`` empty use
these; validation checks user ConfigMaps against the same structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from kaito.api.constants import (
    DEFAULT_INFERENCE_CONFIG_TEMPLATE,
    DEFAULT_LORA_CONFIG_TEMPLATE,
    DEFAULT_QLORA_CONFIG_TEMPLATE,
    INFERENCE_CONFIG_KEY,
    TUNING_CONFIG_KEY,
)
from kaito_runtime import contract

__all__ = ("DEFAULT_RELEASE_NAMESPACE", "default_template", "default_templates")

DEFAULT_RELEASE_NAMESPACE: Final = "kaito-workspace"

#: The default texts are the operator<->pod contract's: the runtime falls back to the same ones.
INFERENCE_PARAMS: Final = contract.INFERENCE_PARAMS
LORA_PARAMS: Final = contract.LORA_PARAMS
QLORA_PARAMS: Final = contract.QLORA_PARAMS

_TEMPLATES: Final[Mapping[str, Mapping[str, str]]] = {
    DEFAULT_INFERENCE_CONFIG_TEMPLATE: {INFERENCE_CONFIG_KEY: INFERENCE_PARAMS},
    DEFAULT_LORA_CONFIG_TEMPLATE: {TUNING_CONFIG_KEY: LORA_PARAMS},
    DEFAULT_QLORA_CONFIG_TEMPLATE: {TUNING_CONFIG_KEY: QLORA_PARAMS},
}


def default_templates() -> Mapping[str, Mapping[str, str]]:
    """Name -> ConfigMap data of every default template."""
    return _TEMPLATES


def default_template(name: str) -> Mapping[str, str] | None:
    """The data of the default template called ``name``, or None."""
    return _TEMPLATES.get(name)
