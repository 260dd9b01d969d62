"""The KAITO manager: the engine's Manager with the Workspace controller and a provisioner.

Top layer: wires ``kaito.engine``, ``kaito.controllers`` and a ``kaito_provisioners`` backend
chosen by name. ``kaito manager`` runs it against a cluster; ``kaito up`` against the in-process
one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from kaito.controllers import ControllerSettings
from kaito.controllers.resources import WORKSPACES
from kaito.controllers.setup import add_workspace_controller
from kaito.engine import KubeClient, LeaderElectionConfig, Manager
from kaito.options import ManagerOptions
from kaito_provisioners import CollectsGarbage, NodeProvisioner
from kaito_provisioners.gc import add_garbage_collector
from kaito_provisioners.metrics import ProvisioningMetrics, ProvisioningStats

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


def make_provisioner(
    options: ManagerOptions, client: KubeClient, *, env: Mapping[str, str] | None = None
) -> NodeProvisioner | None:
    """The node provisioner named by ``--node-provisioner`` (None for bring-your-own nodes).

    ``env`` (default: the process environment) supplies what flags leave unset (the AKS
    cluster, the Azure identity). Raises ``ValueError`` naming the flag to fix.
    """
    name = options.node_provisioner
    if name == "byo" or options.feature_gates["disableNodeAutoProvisioning"]:
        return None
    if name == "fake":
        from kaito_provisioners.fake import FakeProvisioner

        return FakeProvisioner(client, delay=options.fake_node_delay)
    family = options.default_node_image_family or "ubuntu"
    if name in ("karpenter", "azure-gpu-provisioner"):
        from kaito_provisioners.karpenter import (
            KarpenterSettings,
            NodeClaimProvisioner,
            parse_node_classes,
        )

        if name == "azure-gpu-provisioner":
            settings = KarpenterSettings.gpu_provisioner(options.cloud)
        else:
            names, default = (
                parse_node_classes(options.karpenter_node_classes)
                if options.karpenter_node_classes
                else ((), "")
            )
            settings = KarpenterSettings(
                options.karpenter_node_class_group,
                options.karpenter_node_class_kind,
                default,
                names,
                cloud=options.cloud,
            )
        return NodeClaimProvisioner(
            client, attrs.evolve(settings, default_node_image_family=family)
        )
    if name == "aks":
        try:
            from kaito_provisioners.aks import AksProvisioner, AksSettings
        except ImportError as err:
            raise ValueError(
                f"--node-provisioner=aks needs the Azure SDK ({err.name} is missing): "
                "pip install 'kaito[azure]'"
            ) from None
        aks = AksSettings.from_env(
            os.environ if env is None else env,
            subscription_id=options.azure_subscription_id,
            resource_group=options.azure_resource_group,
            cluster_name=options.azure_cluster_name,
            arm_endpoint=options.azure_resource_manager_endpoint,
        )
        aks = attrs.evolve(
            aks, connection_verify=options.azure_ca_file or True, default_node_image_family=family
        )
        return AksProvisioner(aks, client)
    raise ValueError(
        f"--node-provisioner={name!r} is not one of: fake, aks, azure-gpu-provisioner, karpenter, "
        "byo"
    )


def build_manager(
    options: ManagerOptions, client: KubeClient, provisioner: NodeProvisioner | None
) -> Manager:
    """A manager running the Workspace controller (not started)."""
    manager = Manager(
        client,
        name="kaito-workspace",
        leader_election=LeaderElectionConfig(
            LEADER_ELECTION_ID,
            options.leader_election_namespace,
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
        )
        if options.leader_elect
        else None,
        probe_address=options.probe_address,
        metrics_address=options.metrics_address,
    )
    add_workspace_controller(
        manager, client, provisioner, controller_settings(options), workers=options.workers
    )
    stats = getattr(provisioner, "stats", None)
    if isinstance(stats, ProvisioningStats):
        manager.registry.register(ProvisioningMetrics(stats))
    collector: object = provisioner
    if isinstance(collector, CollectsGarbage) and options.node_gc_interval > 0:
        add_garbage_collector(
            manager, collector, manager.informer(WORKSPACES), interval=options.node_gc_interval
        )
    return manager
