"""Wire the Workspace controller into an engine ``Manager``: informers, watches, reconciler.

Controller layer. The owned table (:data:`OWNED_KINDS`) says which kinds to watch through their
controller ownerReference, as controller-runtime's ``Owns()``; Pods and Nodes are watched through
the Workspace labels, user ConfigMaps through the Workspaces that name them.
"""

from __future__ import annotations

from typing import Any, Final

from kaito.api import constants as c
from kaito.controllers._apply import WorkspaceClient
from kaito.controllers._decode import WorkspaceDecoder
from kaito.controllers._observe import (
    UNMANAGED_INDEX,
    WORKSPACE_INDEX,
    index_by_workspace,
    index_unmanaged_nodes,
)
from kaito.controllers._owned import OWNED_KINDS
from kaito.controllers._progress import ProgressReader, http_progress_reader
from kaito.controllers._reconciler import WorkspaceCaches, WorkspaceReconciler
from kaito.controllers._resources import (
    CONFIG_MAPS,
    CONTROLLER_REVISIONS,
    JOBS,
    NODES,
    PODS,
    SERVICES,
    STATEFUL_SETS,
    WORKSPACES,
)
from kaito.controllers._revisions import NAME_LABEL, REVISION_INDEX, index_revisions
from kaito.controllers._settings import ControllerSettings
from kaito.engine import (
    Controller,
    Informer,
    KeyMapper,
    Manager,
    ObjectKey,
    Resource,
    Store,
    map_by_label,
    map_to_controller_owner,
)
from kaito_provisioners import NodeProvisioner

__all__ = (
    "CONFIG_INDEX",
    "MAX_CONCURRENT_RECONCILES",
    "RECONCILE_TIMEOUT_SECONDS",
    "add_workspace_controller",
    "index_by_config",
)

#: As upstream's workspace controller.
MAX_CONCURRENT_RECONCILES: Final = 5
RECONCILE_TIMEOUT_SECONDS: Final = 120.0
#: Store index of Workspaces by the ``namespace/name`` of the ConfigMap their ``config`` names.
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
    decoder: WorkspaceDecoder | None = None,
) -> Controller:
    """Add the ``workspace`` controller to ``manager`` and return it.

    ``decoder`` caches the decoded Workspaces (a fresh one by default).
    """
    workspaces = manager.informer(WORKSPACES)
    nodes = manager.informer(NODES)
    pods = manager.informer(PODS, label_selector=c.LABEL_WORKSPACE)
    owned: dict[Resource, Informer] = {
        kind.resource: manager.informer(
            kind.resource, label_selector=c.LABEL_WORKSPACE if kind.labelled_only else None
        )
        for kind in OWNED_KINDS
    }
    revisions = manager.informer(CONTROLLER_REVISIONS, label_selector=NAME_LABEL)
    revisions.add_indexer(REVISION_INDEX, index_revisions)
    workspaces.add_indexer(CONFIG_INDEX, index_by_config)
    pods.add_indexer(WORKSPACE_INDEX, index_by_workspace)
    nodes.add_indexer(WORKSPACE_INDEX, index_by_workspace)
    nodes.add_indexer(UNMANAGED_INDEX, index_unmanaged_nodes)
    caches = WorkspaceCaches(
        workspaces=workspaces.store,
        nodes=nodes.store,
        pods=pods.store,
        stateful_sets=owned[STATEFUL_SETS].store,
        jobs=owned[JOBS].store,
        services=owned[SERVICES].store,
        config_maps=owned[CONFIG_MAPS].store,
        revisions=revisions.store,
    )
    reconciler = WorkspaceReconciler(
        client,
        caches,
        provisioner,
        manager.event_recorder("workspace-controller"),
        settings,
        progress_reader=progress_reader or http_progress_reader(),
        decoder=decoder,
    )
    controller = manager.add_controller(
        "workspace",
        reconciler.reconcile,
        workers=workers,
        reconcile_timeout=RECONCILE_TIMEOUT_SECONDS,
    )
    by_owner = map_to_controller_owner(c.KIND, c.GROUP)
    by_label = map_by_label(c.LABEL_WORKSPACE, c.LABEL_WORKSPACE_NAMESPACE)
    controller.watch(workspaces)
    for informer in owned.values():
        controller.watch(informer, by_owner)
    controller.watch(owned[CONFIG_MAPS], _workspaces_using_config(workspaces.store))
    controller.watch(pods, by_label)
    controller.watch(nodes, by_label)
    return controller
