"""Patch formats: JSON merge, JSON patch, strategic merge and server-side apply."""

from kaito.cluster._patch._apply import ApplyConflict, apply_config
from kaito.cluster._patch._jsonpatch import JsonPatchError, json_patch
from kaito.cluster._patch._merge import merge_patch
from kaito.cluster._patch._strategic import StrategicPatchError, strategic_merge

__all__ = (
    "ApplyConflict",
    "JsonPatchError",
    "StrategicPatchError",
    "apply_config",
    "json_patch",
    "merge_patch",
    "strategic_merge",
)
