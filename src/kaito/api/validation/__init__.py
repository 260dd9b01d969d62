"""Validation of Workspaces: pure functions the admission webhook and ``kaito validate`` call.

API layer. Every function returns all problems found (``FieldError`` values, some marked as
warnings), never just the first.
"""

from __future__ import annotations

from kaito.api.validation.common import runtime_of, selector_as_map
from kaito.api.validation.configs import validate_inference_config, validate_tuning_config
from kaito.api.validation.context import NodeInfo, ValidationContext, config_map_ref
from kaito.api.validation.update import validate_workspace_update
from kaito.api.validation.workspace import referenced_config_maps, validate_workspace

__all__ = (
    "NodeInfo",
    "ValidationContext",
    "config_map_ref",
    "referenced_config_maps",
    "runtime_of",
    "selector_as_map",
    "validate_inference_config",
    "validate_tuning_config",
    "validate_workspace",
    "validate_workspace_update",
)
