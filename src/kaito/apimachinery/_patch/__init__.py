"""Patch formats: JSON merge, JSON patch, strategic merge and server-side apply."""

from kaito.apimachinery._patch._apply import ApplyConflict, apply_config
from kaito.apimachinery._patch._jsonpatch import (
    MAX_OPERATIONS,
    JsonPatchError,
    JsonPatchTooLarge,
    json_equal,
    json_patch,
)
from kaito.apimachinery._patch._merge import merge_patch
from kaito.apimachinery._patch._strategic import StrategicPatchError, strategic_merge

__all__ = (
    "MAX_OPERATIONS",
    "ApplyConflict",
    "JsonPatchError",
    "JsonPatchTooLarge",
    "StrategicPatchError",
    "apply_config",
    "json_equal",
    "json_patch",
    "merge_patch",
    "strategic_merge",
)
