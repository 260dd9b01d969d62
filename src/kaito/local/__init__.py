"""What ``kaito up`` adds around its cluster so the guide runs on one machine.

Top layer. A model hub on loopback serving the presets' weights (a folder the user named, or a
stand-in built here), the OCI registry adapters go through, and the guide's dataset served over
HTTP.
"""

from kaito.local._hub import (
    HubModel,
    ModelHub,
    ModelResolver,
    ModelUnavailableError,
    folder_commit,
    serve_hub,
)
from kaito.local._models import STAND_IN_MARKER, LocalModels, StandIn

__all__ = (
    "STAND_IN_MARKER",
    "HubModel",
    "LocalModels",
    "ModelHub",
    "ModelResolver",
    "ModelUnavailableError",
    "StandIn",
    "folder_commit",
    "serve_hub",
)
