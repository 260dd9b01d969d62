"""``kaito manager``: the KAITO manager against a real cluster (in-cluster or a kubeconfig).

Runs the Workspace controller with leader election, health and metrics servers, the node
provisioner chosen by flag, and the admission webhook server (HTTPS, port 9443 by default).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
import click
import structlog

from kaito.cli import main
from kaito.engine import ApiError, KubeClient, Manager, load_client
from kaito.logging import configure_logging
from kaito.operator import WebhookServing, build_operator, make_provisioner
from kaito.options import (
    NODE_IMAGE_FAMILIES,
    PROVISIONERS,
    ManagerOptions,
    parse_address,
    parse_feature_gates,
)
from kaito.tls import CertificateAuthority, ServingCertificate, generate_serving_certificate
from kaito.webhooks import WebhookCertificates, webhook_configurations

__all__ = (
    "RunningManager",
    "WebhookOptions",
    "manager",
    "options_from_params",
    "run_manager",
)

log = structlog.get_logger(__name__)


@main.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig (default: in-cluster).")
@click.option(
    "--node-provisioner",
    envvar="NODE_PROVISIONER",
    type=click.Choice(PROVISIONERS),
    default="fake",
    show_default=True,
    help="Who creates GPU nodes: aks (agent pools through ARM), azure-gpu-provisioner or "
    "karpenter (NodeClaims), byo (your nodes), fake (simulated); env NODE_PROVISIONER. "
    "See docs/provisioners.md.",
)
@click.option(
    "--azure-subscription-id", help="aks: the cluster's subscription (env ARM_SUBSCRIPTION_ID)."
)
@click.option(
    "--azure-resource-group", help="aks: the cluster's resource group (env ARM_RESOURCE_GROUP)."
)
@click.option("--azure-cluster-name", help="aks: the AKS cluster (env AZURE_CLUSTER_NAME).")
@click.option(
    "--azure-resource-manager-endpoint",
    help="aks: ARM's URL for a sovereign cloud (env ARM_ENDPOINT; default the public cloud's).",
)
@click.option(
    "--azure-ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="aks: a CA bundle trusted for ARM and the token endpoint.",
)
@click.option(
    "--karpenter-node-class-group",
    default="karpenter.azure.com",
    show_default=True,
    help="karpenter: the NodeClass API group.",
)
@click.option(
    "--karpenter-node-class-kind",
    default="AKSNodeClass",
    show_default=True,
    help="karpenter: the NodeClass kind.",
)
@click.option(
    "--karpenter-node-class-version",
    default="v1beta1",
    show_default=True,
    help="karpenter: the NodeClass API version.",
)
@click.option(
    "--karpenter-node-class-resource-name",
    default="aksnodeclasses",
    show_default=True,
    help="karpenter: the NodeClass plural resource name.",
)
@click.option(
    "--karpenter-node-classes",
    default="",
    help="karpenter: JSON array of NodeClasses Workspaces may select, e.g. "
    '[{"name":"image-family-ubuntu","default":true}]; empty: by node image family.',
)
@click.option(
    "--default-node-image-family",
    type=click.Choice(NODE_IMAGE_FAMILIES),
    help="Node image family for Workspaces that name none (default ubuntu).",
)
@click.option(
    "--node-gc-interval",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between sweeps for nodes whose Workspace is gone (0: never).",
)
@click.option(
    "--feature-gates", default="", help="e.g. vLLM=true,disableNodeAutoProvisioning=false"
)
@click.option(
    "--metrics-bind-address",
    default=":8080",
    show_default=True,
    help="Prometheus /metrics address; 0 disables.",
)
@click.option(
    "--health-probe-bind-address",
    default=":8081",
    show_default=True,
    help="/healthz and /readyz address; 0 disables.",
)
@click.option("--leader-elect/--no-leader-elect", default=False, show_default=True)
@click.option(
    "--leader-election-lease-duration",
    default=15.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a standby waits after the leader's last renewal before taking over.",
)
@click.option(
    "--leader-election-renew-deadline",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds the leader keeps trying to renew before it stops leading.",
)
@click.option(
    "--leader-election-retry-period",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between tries to take or renew the Lease.",
)
@click.option(
    "--release-namespace",
    envvar="RELEASE_NAMESPACE",
    default="kaito-workspace",
    show_default=True,
    help="Where KAITO is installed (env RELEASE_NAMESPACE).",
)
@click.option(
    "--cloud",
    envvar="CLOUD_PROVIDER",
    default="azure",
    show_default=True,
    type=click.Choice(["azure", "aws", "arc"]),
    help="Env CLOUD_PROVIDER.",
)
@click.option("--runtime-image", help="Image with kaito_runtime for the pods.")
@click.option("--workers", default=5, show_default=True, type=click.IntRange(1, 64))
@click.option("--webhook/--no-webhook", default=True, show_default=True)
@click.option("--webhook-port", envvar="WEBHOOK_PORT", default=9443, show_default=True, type=int)
@click.option(
    "--webhook-cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="tls.crt, tls.key and ca.crt; generated when absent.",
)
@click.option(
    "--webhook-service",
    envvar="WEBHOOK_SERVICE",
    help="NAMESPACE/NAME of the webhook Service: the manager keeps a CA and serving certificate "
    "for it in the Secret workspace-webhook-cert (renewed before expiry, shared by replicas) and "
    "the caBundle of the webhook configurations.",
)
@click.option(
    "--webhook-service-port",
    default=443,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The webhook Service's port (the webhook configurations call it).",
)
@click.option(
    "--log-format", type=click.Choice(["console", "json"]), default="json", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def manager(**params: Any) -> None:
    """Run the KAITO manager (controllers, webhooks, leader election, probes, metrics)."""
    configure_logging(params["log_level"], params["log_format"])
    try:
        options, hooks = options_from_params(params)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    sys.exit(anyio.run(_run, options, hooks))


def options_from_params(params: Mapping[str, Any]) -> tuple[ManagerOptions, WebhookOptions]:
    """The manager's and the webhooks' options from ``kaito manager``'s parsed parameters.

    Raises:
        ValueError: a value is not valid (the message names the flag).
    """
    p = dict(params)
    if (
        not p["leader_election_lease_duration"]
        > p["leader_election_renew_deadline"]
        > (p["leader_election_retry_period"])
    ):
        raise ValueError(
            "--leader-election-lease-duration > --leader-election-renew-deadline > "
            "--leader-election-retry-period must hold, got "
            f"{p['leader_election_lease_duration']:g}, {p['leader_election_renew_deadline']:g}, "
            f"{p['leader_election_retry_period']:g}"
        )
    options = ManagerOptions(
        kubeconfig=p["kubeconfig"],
        node_provisioner=p["node_provisioner"],
        feature_gates=parse_feature_gates(p["feature_gates"]),
        metrics_address=parse_address(p["metrics_bind_address"]),
        probe_address=parse_address(p["health_probe_bind_address"]),
        leader_elect=p["leader_elect"],
        leader_election_namespace=p["release_namespace"],
        lease_duration=p["leader_election_lease_duration"],
        renew_deadline=p["leader_election_renew_deadline"],
        retry_period=p["leader_election_retry_period"],
        release_namespace=p["release_namespace"],
        cloud=p["cloud"],
        runtime_image=p["runtime_image"],
        workers=p["workers"],
        azure_subscription_id=p["azure_subscription_id"],
        azure_resource_group=p["azure_resource_group"],
        azure_cluster_name=p["azure_cluster_name"],
        azure_resource_manager_endpoint=p["azure_resource_manager_endpoint"],
        azure_ca_file=p["azure_ca_file"],
        karpenter_node_class_group=p["karpenter_node_class_group"],
        karpenter_node_class_kind=p["karpenter_node_class_kind"],
        karpenter_node_class_version=p["karpenter_node_class_version"],
        karpenter_node_class_resource_name=p["karpenter_node_class_resource_name"],
        karpenter_node_classes=p["karpenter_node_classes"],
        default_node_image_family=p["default_node_image_family"] or "",
        node_gc_interval=p["node_gc_interval"],
    )
    hooks = WebhookOptions(
        p["webhook"],
        p["webhook_port"],
        p["webhook_cert_dir"],
        p["webhook_service"],
        p["webhook_service_port"],
    )
    return options, hooks


def _certificate(cert_dir: Path | None, service: str | None) -> ServingCertificate:
    if cert_dir is not None and (cert_dir / "tls.crt").exists():
        ca_pem = (cert_dir / "ca.crt").read_bytes() if (cert_dir / "ca.crt").exists() else b""
        return ServingCertificate(
            CertificateAuthority(ca_pem, b""),
            (cert_dir / "tls.crt").read_bytes(),
            (cert_dir / "tls.key").read_bytes(),
        )
    hosts = ["localhost", "127.0.0.1"]
    if service:
        namespace, _, name = service.partition("/")
        hosts += [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    log.info("webhook_certificate_generated", hosts=hosts)
    return generate_serving_certificate(hosts)


async def _register_webhooks(
    client: KubeClient, certificate: ServingCertificate, service: str, port: int
) -> None:
    """Create the webhook configurations for certificates from ``--webhook-cert-dir``, or make
    their caBundle that CA's (the manager does not rotate certificates it did not make)."""
    from kaito.engine import ApiError, ObjectKey, Resource

    namespace, _, name = service.partition("/")
    for config in webhook_configurations(
        ca_pem=certificate.ca.cert_pem, service=(namespace, name, port)
    ):
        resource = Resource(
            "admissionregistration.k8s.io", "v1", config["kind"].lower() + "s", config["kind"],
            namespaced=False,
        )  # fmt: skip
        key = ObjectKey("", config["metadata"]["name"])
        try:
            await client.create(resource, config)
        except ApiError as err:
            if err.status != 409:
                raise
            current = await client.get(resource, key)
            bundle = config["webhooks"][0]["clientConfig"]["caBundle"]
            for hook in current.get("webhooks") or []:
                hook.setdefault("clientConfig", {})["caBundle"] = bundle
            await client.replace(resource, current)
        log.info("webhook_configuration_registered", name=key.name)


@attrs.frozen
class WebhookOptions:
    """How ``kaito manager`` serves admission (its ``--webhook*`` flags)."""

    enabled: bool = True
    port: int = 9443
    cert_dir: Path | None = None
    service: str | None = None
    service_port: int = 443
    host: str = "0.0.0.0"


@attrs.frozen
class RunningManager:
    """What :func:`run_manager` reports once started: stop it with ``manager.stop()``."""

    manager: Manager
    webhook_port: int | None
    certificates: WebhookCertificates | None


async def run_manager(
    options: ManagerOptions,
    hooks: WebhookOptions,
    client: KubeClient,
    *,
    signals: bool = True,
    task_status: anyio.abc.TaskStatus[RunningManager] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the manager as ``kaito manager`` does (in this process, on ``client``) until it stops.

    With ``--webhook-service`` the certificate keeper syncs first (the Secret and the caBundles
    are in place, or the refusal is raised, before anything runs), then the operator is built
    with the keeper and the webhook server as runnables of its Manager; ``task_status`` gets a
    :class:`RunningManager` once the Manager has started. With ``signals`` SIGTERM and SIGINT
    stop it gracefully; otherwise call ``manager.stop()``.

    Raises:
        ValueError: the node provisioner cannot be built from ``options``.
        ApiError: the API server refused the webhook certificate's Secret or configurations.
    """
    provisioner = make_provisioner(options, client)
    try:
        keeper: WebhookCertificates | None = None
        serving: WebhookServing | None = None
        if hooks.enabled:
            if hooks.cert_dir is None and hooks.service:
                service_namespace, _, service_name = hooks.service.partition("/")
                keeper = WebhookCertificates(
                    client,
                    namespace=options.release_namespace,
                    service=service_name,
                    service_namespace=service_namespace,
                    service_port=hooks.service_port,
                )
                certificate = await keeper.sync()  # before anything runs: refusals as themselves
            else:
                certificate = _certificate(hooks.cert_dir, hooks.service)
            serving = WebhookServing(
                certificate, host=hooks.host, port=hooks.port, certificates=keeper
            )
        operator = build_operator(options, client, provisioner, webhooks=serving)
        log.info("manager_starting", pid=os.getpid(), provisioner=options.node_provisioner)
        async with anyio.create_task_group() as tg:

            async def report_started() -> None:
                await operator.manager.started.wait()  # the webhook server is listening
                # --webhook-cert-dir's CA (not the keeper's): registered, never rotated.
                certificate = serving.certificate if serving is not None else None
                external = keeper is None and certificate is not None and certificate.ca.cert_pem
                if external and certificate is not None and hooks.service:
                    await _register_webhooks(client, certificate, hooks.service, hooks.service_port)
                port = operator.webhooks.bound_port if operator.webhooks is not None else None
                task_status.started(RunningManager(operator.manager, port, keeper))

            tg.start_soon(report_started)
            manager = operator.manager
            await (manager.run_until_signalled() if signals else manager.run())
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            closer = getattr(provisioner, "aclose", None)
            if closer is not None:
                await closer()


async def _run(options: ManagerOptions, hooks: WebhookOptions) -> int:
    client = await load_client(options.kubeconfig)
    try:
        await run_manager(options, hooks, client)
    except ValueError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except ApiError as err:  # the webhook certificate's Secret or configurations refused
        log.error("manager_start_failed", status=err.status, reason=err.reason, error=str(err))
        click.echo(f"error: cannot start: {err}", err=True)
        return 1
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()
    return 0
