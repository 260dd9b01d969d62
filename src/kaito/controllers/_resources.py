"""The API resources the Workspace controllers read and write.

Controller layer.
"""

from __future__ import annotations

from typing import Final

from kaito.api import constants as c
from kaito.engine import EVENTS, Resource

__all__ = (
    "CONFIG_MAPS",
    "CONTROLLER_REVISIONS",
    "EVENTS",
    "JOBS",
    "NODES",
    "PODS",
    "SERVICES",
    "STATEFUL_SETS",
    "WORKSPACES",
)

WORKSPACES: Final = Resource(c.GROUP, c.STORAGE_VERSION, c.PLURAL, c.KIND)
NODES: Final = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS: Final = Resource("", "v1", "pods", "Pod")
SERVICES: Final = Resource("", "v1", "services", "Service")
CONFIG_MAPS: Final = Resource("", "v1", "configmaps", "ConfigMap")
STATEFUL_SETS: Final = Resource("apps", "v1", "statefulsets", "StatefulSet")
JOBS: Final = Resource("batch", "v1", "jobs", "Job")
CONTROLLER_REVISIONS: Final = Resource("apps", "v1", "controllerrevisions", "ControllerRevision")
