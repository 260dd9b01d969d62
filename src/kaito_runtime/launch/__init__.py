"""Launchers of multi-GPU and multi-node pods: tuning through accelerate, Ray for vLLM.

Runtime layer (``python -m kaito_runtime.launch``). ``tuning`` starts one tuning process per GPU
through ``accelerate launch`` (on one node or several); ``ray`` runs a pod's part of a multi-node
inference Workspace (the Ray head and the server on pod 0, a Ray node on the others); ``health``
is the exec probe of those pods. Importing this package is cheap: torch and Ray are imported
only where they are used.
"""

from __future__ import annotations

from kaito_runtime.launch._children import OwnedProcess
from kaito_runtime.launch._errors import LaunchError
from kaito_runtime.launch._health import HealthCheck, check_health
from kaito_runtime.launch._ray_cluster import NodeWaiter, RayClusterSpec, run_ray
from kaito_runtime.launch._ray_nodes import RayNode, RayUnavailableError, list_ray_nodes
from kaito_runtime.launch._tuning import TuningLaunch, run_tuning_launch

__all__ = (
    "HealthCheck",
    "LaunchError",
    "NodeWaiter",
    "OwnedProcess",
    "RayClusterSpec",
    "RayNode",
    "RayUnavailableError",
    "TuningLaunch",
    "check_health",
    "list_ray_nodes",
    "run_ray",
    "run_tuning_launch",
)
