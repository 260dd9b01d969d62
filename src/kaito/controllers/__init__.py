"""The Workspace controllers: nodes, the inference workload or the tuning Job, and the status.

Controller layer: built on ``kaito.engine``, ``kaito.api`` and the ``NodeProvisioner`` Protocol
(never a provisioner backend).
"""

from __future__ import annotations

from kaito.controllers.settings import DEFAULT_RUNTIME_IMAGE, ControllerSettings

__all__ = ("DEFAULT_RUNTIME_IMAGE", "ControllerSettings")
