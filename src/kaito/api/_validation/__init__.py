"""Validation of Workspaces: pure functions the admission webhook and ``kaito validate`` call.

API layer. Every function returns all problems found (``FieldError`` values, some marked as
warnings), never just the first.
"""

from __future__ import annotations

from kaito.api._validation.common import runtime_of, selector_as_map
from kaito.api._validation.configs import validate_inference_config, validate_tuning_config
from kaito.api._validation.context import NodeInfo, ValidationContext, config_map_ref
from kaito.api._validation.update import validate_workspace_update
from kaito.api._validation.workspace import referenced_config_maps, validate_workspace

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
