"""The KAITO operator: the engine's Manager with the Workspace controller, the admission webhook
server and a node provisioner, built in one place.

Top layer: wires ``kaito.engine``, ``kaito.controllers``, ``kaito.webhooks`` and a
``kaito_provisioners`` backend chosen by name. ``kaito manager`` runs it against a cluster;
``kaito up`` (``kaito.embedded``) against the in-process one; both build it with
:func:`build_operator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kaito.controllers import ControllerSettings, add_workspace_controller, validation_context
from kaito.engine import KubeClient, LeaderElectionConfig, Manager
from kaito.options import ManagerOptions
from kaito.webhooks import WebhookServer
from kaito_provisioners import NodeProvisioner

if TYPE_CHECKING:  # building a certificate (cryptography) is the caller's business
    from kaito.tls import ServingCertificate

__all__ = (
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


@attrs.frozen
class WebhookServing:
    """Where and with which certificate the admission webhooks are served."""

    certificate: ServingCertificate
    host: str = "0.0.0.0"
    #: 0 picks a free port (see :attr:`WebhookServer.bound_port` once the manager started).
    port: int = 9443


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
    options' addresses, the Workspace controller, and, with ``webhooks``, the admission webhook
    server as a runnable that needs no lease, validating with the same settings the controller
    uses.
    """
    manager = Manager(
        client,
        name="kaito-workspace",
        leader_election=LeaderElectionConfig(LEADER_ELECTION_ID, options.leader_election_namespace)
        if options.leader_elect
        else None,
        probe_address=options.probe_address,
        metrics_address=options.metrics_address,
    )
    settings = controller_settings(options)
    add_workspace_controller(manager, client, provisioner, settings, workers=options.workers)
    server = None
    if webhooks is not None:
        server = WebhookServer(
            client,
            validation_context(settings),
            webhooks.certificate,
            host=webhooks.host,
            port=webhooks.port,
        )
        manager.add_runnable(WEBHOOK_RUNNABLE, server)
    return Operator(manager, settings, server)
