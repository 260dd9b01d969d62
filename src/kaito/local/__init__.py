"""What ``kaito up`` adds around its cluster so the guide runs on one machine.

Top layer. A model hub on loopback serving the presets' weights (a folder the user named, or a
stand-in built here) and the guide's dataset, the OCI registry adapters go through, a reporter
that tells the story of the Workspaces' Pods, and the guide itself, run end to end.
"""

from kaito.local._guide import (
    GUIDE_INFERENCE,
    GUIDE_PROMPT,
    GUIDE_TUNING,
    GuideError,
    GuideResult,
    guide_manifests,
    run_guide,
)
from kaito.local._hub import (
    HubModel,
    ModelHub,
    ModelResolver,
    ModelUnavailableError,
    folder_commit,
    serve_hub,
)
from kaito.local._models import STAND_IN_MARKER, LocalModels, StandIn
from kaito.local._registry import LocalRegistry, RegistryError, run_registry, use_registry
from kaito.local._report import Reporter, chat_url
from kaito.local._stack import (
    GUIDE_DATASET,
    LocalSettings,
    LocalStack,
    StackError,
    default_cache_dir,
    local_stack,
    runtime_has_vllm,
)

__all__ = (
    "GUIDE_DATASET",
    "GUIDE_INFERENCE",
    "GUIDE_PROMPT",
    "GUIDE_TUNING",
    "STAND_IN_MARKER",
    "GuideError",
    "GuideResult",
    "HubModel",
    "LocalModels",
    "LocalRegistry",
    "LocalSettings",
    "LocalStack",
    "ModelHub",
    "ModelResolver",
    "ModelUnavailableError",
    "RegistryError",
    "Reporter",
    "StackError",
    "StandIn",
    "chat_url",
    "default_cache_dir",
    "folder_commit",
    "guide_manifests",
    "local_stack",
    "run_guide",
    "run_registry",
    "runtime_has_vllm",
    "serve_hub",
    "use_registry",
)
