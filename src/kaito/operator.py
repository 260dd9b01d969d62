"""The KAITO operator: the engine's Manager with the Workspace controller, the admission webhook
server and a node provisioner, built in one place.

Top layer: wires ``kaito.engine``, ``kaito.controllers``, ``kaito.webhooks`` and a
``kaito_provisioners`` backend chosen by name. ``kaito manager`` runs it against a cluster;
``kaito up`` (``kaito.embedded``) against the in-process one; both build it with
:func:`build_operator`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from kaito.controllers import (
    WORKSPACES,
    ControllerSettings,
    add_workspace_controller,
    validation_context,
)
from kaito.engine import KubeClient, LeaderElectionConfig, Manager
from kaito.options import ManagerOptions
from kaito.webhooks import WebhookCertificates, WebhookServer
from kaito_provisioners import (
    CollectsGarbage,
    NodeProvisioner,
    ProvisioningMetrics,
    ProvisioningStats,
    add_garbage_collector,
)

if TYPE_CHECKING:  # building a certificate (cryptography) is the caller's business
    from kaito.tls import ServingCertificate

__all__ = (
    "CERTIFICATES_RUNNABLE",
    "LEADER_ELECTION_ID",
    "WEBHOOK_RUNNABLE",
    "Operator",
    "WebhookServing",
    "build_operator",
    "controller_settings",
    "make_provisioner",
)

#: Upstream's leader-election id.
LEADER_ELECTION_ID = "ef60f9b0.io"
#: The webhook server's name among the manager's runnables.
WEBHOOK_RUNNABLE = "webhook-server"
#: The webhook certificate keeper's name among the manager's runnables.
CERTIFICATES_RUNNABLE = "webhook-certificates"


def controller_settings(options: ManagerOptions) -> ControllerSettings:
    """The controllers' settings implied by the manager's options."""
    gates = options.feature_gates
    settings = ControllerSettings(
        release_namespace=options.release_namespace,
        cloud=options.cloud,
        node_auto_provisioning=not gates["disableNodeAutoProvisioning"]
        and options.node_provisioner != "byo",
        vllm_enabled=gates["vLLM"],
        enable_mig=gates["enableMIG"],
        enable_accelerator=gates["enableAccelerator"],
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


@attrs.frozen
class WebhookServing:
    """Where and with which certificate the admission webhooks are served.

    With ``certificates`` (the keeper of the certificate in its Secret, already synced) the
    server listens with the keeper's context, which follows every rotation, and the keeper runs
    beside it on every replica; ``certificate`` is then the keeper's current one.
    """

    certificate: ServingCertificate
    host: str = "0.0.0.0"
    #: 0 picks a free port (see :attr:`WebhookServer.bound_port` once the manager started).
    port: int = 9443
    certificates: WebhookCertificates | None = None


@attrs.frozen
class Operator:
    """A built operator (not started): run ``manager``; ``webhooks`` is one of its runnables."""

    manager: Manager
    settings: ControllerSettings
    webhooks: WebhookServer | None


def build_operator(
    options: ManagerOptions,
    client: KubeClient,
    provisioner: NodeProvisioner | None,
    *,
    webhooks: WebhookServing | None = None,
) -> Operator:
    """The KAITO operator: the Workspace controller on the leader, the webhook server everywhere.

    The Manager runs leader election (``--leader-elect``), the probe and metrics servers at the
    options' addresses, the Workspace controller, the provisioner's metrics and its garbage
    collector of orphan nodes (when it has them), and, with ``webhooks``, the admission webhook
    server as a runnable that needs no lease, validating with the same settings the controller
    uses.
    """
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
    settings = controller_settings(options)
    add_workspace_controller(manager, client, provisioner, settings, workers=options.workers)
    stats = getattr(provisioner, "stats", None)
    if isinstance(stats, ProvisioningStats):
        manager.registry.register(ProvisioningMetrics(stats))
    collector: object = provisioner
    if isinstance(collector, CollectsGarbage) and options.node_gc_interval > 0:
        add_garbage_collector(
            manager, collector, manager.informer(WORKSPACES), interval=options.node_gc_interval
        )
    server = None
    if webhooks is not None:
        keeper = webhooks.certificates
        if keeper is not None:
            for collector in keeper.metrics:
                manager.registry.register(collector)
            # Added first: runnables without a lease start in order, so the keeper has synced
            # (the Secret, the caBundles) before the server listens.
            manager.add_runnable(CERTIFICATES_RUNNABLE, keeper)
        server = WebhookServer(
            client,
            validation_context(settings),
            webhooks.certificate,
            host=webhooks.host,
            port=webhooks.port,
            ssl_context=keeper.context if keeper is not None else None,
        )
        manager.add_runnable(WEBHOOK_RUNNABLE, server)
    return Operator(manager, settings, server)
