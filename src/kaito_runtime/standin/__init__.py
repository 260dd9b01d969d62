"""Stand-in models: a small random-weight model of a preset's real architecture, for machines
that cannot run or download the real one.

Runtime layer. Built once and deterministically (same model id, same bytes), labelled as a
stand-in in its config (``kaito_stand_in``) and in a ``kaito-stand-in.json`` beside the weights,
so the programs that load it say so. ``python -m kaito_runtime.standin`` builds one.
"""

from __future__ import annotations

from kaito_runtime.standin._architectures import (
    ChatFamily,
    StandInArchitecture,
    UnsupportedModelError,
    architecture_for,
)
from kaito_runtime.standin._build import (
    STAND_IN_MARKER,
    StandInReport,
    build_stand_in,
    read_marker,
    stand_in_label,
    stand_in_note,
)
from kaito_runtime.standin._corpus import GUIDE_SYSTEM_PROMPT, guide_conversations
from kaito_runtime.standin._dataset import write_guide_dataset

__all__ = (
    "GUIDE_SYSTEM_PROMPT",
    "STAND_IN_MARKER",
    "ChatFamily",
    "StandInArchitecture",
    "StandInReport",
    "UnsupportedModelError",
    "architecture_for",
    "build_stand_in",
    "guide_conversations",
    "read_marker",
    "stand_in_label",
    "stand_in_note",
    "write_guide_dataset",
)
