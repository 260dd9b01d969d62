"""The KAITO manager: the engine's Manager with the Workspace controller and a provisioner.

Top layer: wires ``kaito.engine``, ``kaito.controllers`` and a ``kaito_provisioners`` backend
chosen by name. ``kaito manager`` runs it against a cluster; ``kaito up`` against the in-process
one.
"""

from __future__ import annotations

import attrs

from kaito.controllers import ControllerSettings, add_workspace_controller
from kaito.engine import KubeClient, LeaderElectionConfig, Manager
from kaito.options import ManagerOptions
from kaito_provisioners import NodeProvisioner

__all__ = ("LEADER_ELECTION_ID", "build_manager", "controller_settings", "make_provisioner")

#: Upstream's leader-election id.
LEADER_ELECTION_ID = "ef60f9b0.io"


def controller_settings(options: ManagerOptions) -> ControllerSettings:
    """The controllers' settings implied by the manager's options."""
    gates = options.feature_gates
    settings = ControllerSettings(
        release_namespace=options.release_namespace,
        cloud=options.cloud,
        node_auto_provisioning=not gates["disableNodeAutoProvisioning"]
        and options.node_provisioner != "byo",
        vllm_enabled=gates["vLLM"],
        allow_local_urls=options.allow_local_urls,
    )
    if options.runtime_image:
        settings = attrs.evolve(settings, runtime_image=options.runtime_image)
    return settings


def make_provisioner(options: ManagerOptions, client: KubeClient) -> NodeProvisioner | None:
    """The node provisioner named by ``--node-provisioner`` (None for bring-your-own nodes)."""
    name = options.node_provisioner
    if name == "byo" or options.feature_gates["disableNodeAutoProvisioning"]:
        return None
    if name == "fake":
        from kaito_provisioners.fake import FakeProvisioner

        return FakeProvisioner(client, delay=options.fake_node_delay)
    raise ValueError(
        f"--node-provisioner={name!r} has no backend in this build yet; "
        "use fake (simulated GPU nodes) or byo (bring-your-own nodes)"
    )


def build_manager(
    options: ManagerOptions, client: KubeClient, provisioner: NodeProvisioner | None
) -> Manager:
    """A manager running the Workspace controller (not started)."""
    manager = Manager(
        client,
        name="kaito-workspace",
        leader_election=LeaderElectionConfig(LEADER_ELECTION_ID, options.leader_election_namespace)
        if options.leader_elect
        else None,
        probe_address=options.probe_address,
        metrics_address=options.metrics_address,
    )
    add_workspace_controller(
        manager, client, provisioner, controller_settings(options), workers=options.workers
    )
    return manager
