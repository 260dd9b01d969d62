"""Wire the Workspace controller into an engine ``Manager``: informers, watches, reconciler.

Controller layer.
"""

from __future__ import annotations

from typing import Any, Final

from kaito.api import constants as c
from kaito.controllers.apply import WorkspaceClient
from kaito.controllers.progress import ProgressReader, http_progress_reader
from kaito.controllers.resources import (
    CONFIG_MAPS,
    JOBS,
    NODES,
    PODS,
    SERVICES,
    STATEFUL_SETS,
    WORKSPACES,
)
from kaito.controllers.settings import ControllerSettings
from kaito.controllers.workspace import (
    UNMANAGED_INDEX,
    WORKSPACE_INDEX,
    WorkspaceCaches,
    WorkspaceReconciler,
    index_by_workspace,
    index_unmanaged_nodes,
)
from kaito.engine import (
    Controller,
    KeyMapper,
    Manager,
    ObjectKey,
    Store,
    map_by_label,
    map_to_controller_owner,
)
from kaito_provisioners import NodeProvisioner

__all__ = ("MAX_CONCURRENT_RECONCILES", "add_workspace_controller")

#: As upstream's workspace controller.
MAX_CONCURRENT_RECONCILES: Final = 5
RECONCILE_TIMEOUT_SECONDS: Final = 120.0


CONFIG_INDEX: Final = "config"


def index_by_config(obj: dict[str, Any]) -> list[str]:
    """Index Workspaces by the ``namespace/name`` of the ConfigMap their ``config`` names."""
    section = obj.get("inference") or obj.get("tuning") or {}
    config = section.get("config") if isinstance(section, dict) else None
    if not config:
        return []
    return [f"{(obj.get('metadata') or {}).get('namespace', '')}/{config}"]


def _workspaces_using_config(workspaces: Store) -> KeyMapper:
    """Map a ConfigMap to the Workspaces of its namespace that name it in ``config``."""

    def mapper(obj: dict[str, Any]) -> list[ObjectKey]:
        meta = obj.get("metadata") or {}
        return workspaces.keys_by_index(
            CONFIG_INDEX, f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        )

    return mapper


def add_workspace_controller(
    manager: Manager,
    client: WorkspaceClient,
    provisioner: NodeProvisioner | None,
    settings: ControllerSettings,
    *,
    workers: int = MAX_CONCURRENT_RECONCILES,
    progress_reader: ProgressReader | None = None,
) -> Controller:
    """Add the ``workspace`` controller to ``manager`` and return it."""
    owned = f"{c.LABEL_WORKSPACE}"
    workspaces = manager.informer(WORKSPACES)
    nodes = manager.informer(NODES)
    pods = manager.informer(PODS, label_selector=owned)
    stateful_sets = manager.informer(STATEFUL_SETS, label_selector=owned)
    jobs = manager.informer(JOBS, label_selector=owned)
    services = manager.informer(SERVICES, label_selector=owned)
    config_maps = manager.informer(CONFIG_MAPS)
    workspaces.add_indexer(CONFIG_INDEX, index_by_config)
    pods.add_indexer(WORKSPACE_INDEX, index_by_workspace)
    nodes.add_indexer(WORKSPACE_INDEX, index_by_workspace)
    nodes.add_indexer(UNMANAGED_INDEX, index_unmanaged_nodes)
    caches = WorkspaceCaches(
        workspaces=workspaces.store,
        nodes=nodes.store,
        pods=pods.store,
        stateful_sets=stateful_sets.store,
        jobs=jobs.store,
        services=services.store,
        config_maps=config_maps.store,
    )
    reconciler = WorkspaceReconciler(
        client,
        caches,
        provisioner,
        manager.event_recorder("workspace-controller"),
        settings,
        progress_reader=progress_reader or http_progress_reader(),
    )
    controller = manager.add_controller(
        "workspace",
        reconciler.reconcile,
        workers=workers,
        reconcile_timeout=RECONCILE_TIMEOUT_SECONDS,
    )
    owner = map_to_controller_owner(c.KIND, c.GROUP)
    by_label = map_by_label(c.LABEL_WORKSPACE, c.LABEL_WORKSPACE_NAMESPACE)
    controller.watch(workspaces)
    for informer in (stateful_sets, jobs, services):
        controller.watch(informer, owner)
    controller.watch(config_maps, owner)
    controller.watch(config_maps, _workspaces_using_config(workspaces.store))
    controller.watch(pods, by_label)
    controller.watch(nodes, by_label)
    return controller
