"""``kaito manager``: the KAITO manager against a real cluster (in-cluster or a kubeconfig).

Runs the Workspace controller with leader election, health and metrics servers, the node
provisioner chosen by flag, and the admission webhook server (HTTPS, port 9443 by default).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import attrs
import click
import structlog

from kaito.cli import main
from kaito.engine import KubeClient, load_client
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
from kaito.webhooks import webhook_configurations

__all__ = ("manager",)

log = structlog.get_logger(__name__)

WEBHOOK_SECRET = "workspace-webhook-cert"


@attrs.frozen
class _WebhookOptions:
    enabled: bool
    port: int
    cert_dir: Path | None
    service: str | None


@main.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig (default: in-cluster).")
@click.option(
    "--node-provisioner",
    type=click.Choice(PROVISIONERS),
    default="fake",
    show_default=True,
    help="Who creates GPU nodes: aks (agent pools through ARM), azure-gpu-provisioner or "
    "karpenter (NodeClaims), byo (your nodes), fake (simulated). See docs/provisioners.md.",
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
    help="NAMESPACE/NAME of the webhook Service: register the webhook configurations.",
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
def manager(
    *,
    kubeconfig: str | None,
    node_provisioner: str,
    azure_subscription_id: str | None,
    azure_resource_group: str | None,
    azure_cluster_name: str | None,
    azure_resource_manager_endpoint: str | None,
    azure_ca_file: str | None,
    karpenter_node_class_group: str,
    karpenter_node_class_kind: str,
    karpenter_node_class_version: str,
    karpenter_node_class_resource_name: str,
    karpenter_node_classes: str,
    default_node_image_family: str | None,
    node_gc_interval: float,
    feature_gates: str,
    metrics_bind_address: str,
    health_probe_bind_address: str,
    leader_elect: bool,
    release_namespace: str,
    cloud: str,
    runtime_image: str | None,
    workers: int,
    webhook: bool,
    webhook_port: int,
    webhook_cert_dir: Path | None,
    webhook_service: str | None,
    log_format: str,
    log_level: str,
) -> None:
    """Run the KAITO manager (controllers, webhooks, leader election, probes, metrics)."""
    configure_logging(log_level, "json" if log_format == "json" else "console")
    try:
        options = ManagerOptions(
            kubeconfig=kubeconfig,
            node_provisioner=node_provisioner,
            feature_gates=parse_feature_gates(feature_gates),
            metrics_address=parse_address(metrics_bind_address),
            probe_address=parse_address(health_probe_bind_address),
            leader_elect=leader_elect,
            leader_election_namespace=release_namespace,
            release_namespace=release_namespace,
            cloud=cloud,
            runtime_image=runtime_image,
            workers=workers,
            azure_subscription_id=azure_subscription_id,
            azure_resource_group=azure_resource_group,
            azure_cluster_name=azure_cluster_name,
            azure_resource_manager_endpoint=azure_resource_manager_endpoint,
            azure_ca_file=azure_ca_file,
            karpenter_node_class_group=karpenter_node_class_group,
            karpenter_node_class_kind=karpenter_node_class_kind,
            karpenter_node_class_version=karpenter_node_class_version,
            karpenter_node_class_resource_name=karpenter_node_class_resource_name,
            karpenter_node_classes=karpenter_node_classes,
            default_node_image_family=default_node_image_family or "",
            node_gc_interval=node_gc_interval,
        )
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    hooks = _WebhookOptions(webhook, webhook_port, webhook_cert_dir, webhook_service)
    sys.exit(anyio.run(_run, options, hooks))


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


_SECRETS_PATH = ("", "v1", "secrets", "Secret")


async def _shared_certificate(
    client: KubeClient, namespace: str, service: str
) -> ServingCertificate:
    """The webhook certificate every replica serves: the Secret ``workspace-webhook-cert`` in the
    release namespace, created by whichever replica comes first (as upstream names it)."""
    import base64

    from kaito.engine import ApiError, ObjectKey, Resource

    secrets = Resource(*_SECRETS_PATH)
    key = ObjectKey(namespace, WEBHOOK_SECRET)

    def decode(secret: dict[str, object]) -> ServingCertificate:
        data = secret.get("data") or {}
        assert isinstance(data, dict)
        raw = {k: base64.b64decode(str(v)) for k, v in data.items()}
        return ServingCertificate(
            CertificateAuthority(raw["ca.crt"], b""), raw["tls.crt"], raw["tls.key"]
        )

    try:
        return decode(await client.get(secrets, key))
    except ApiError as err:
        if not err.not_found:
            raise
    certificate = _certificate(None, service)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": WEBHOOK_SECRET, "namespace": namespace},
        "data": {
            "ca.crt": base64.b64encode(certificate.ca.cert_pem).decode(),
            "tls.crt": base64.b64encode(certificate.cert_pem).decode(),
            "tls.key": base64.b64encode(certificate.key_pem).decode(),
        },
    }
    try:
        await client.create(secrets, secret)
    except ApiError as err:
        if err.status != 409:
            raise
        return decode(await client.get(secrets, key))  # another replica won the race
    log.info("webhook_certificate_stored", secret=WEBHOOK_SECRET, namespace=namespace)
    return certificate


async def _register_webhooks(
    client: KubeClient, certificate: ServingCertificate, service: str, port: int
) -> None:
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
            await client.patch(resource, key, {"webhooks": config["webhooks"]})
        log.info("webhook_configuration_registered", name=key.name)


async def _run(options: ManagerOptions, hooks: _WebhookOptions) -> int:
    client = await load_client(options.kubeconfig)
    provisioner = None
    try:
        try:
            provisioner = make_provisioner(options, client)
        except ValueError as err:
            click.echo(f"error: {err}", err=True)
            return 2
        certificate: ServingCertificate | None = None
        if hooks.enabled:
            if hooks.cert_dir is None and hooks.service:
                certificate = await _shared_certificate(
                    client, options.release_namespace, hooks.service
                )
            else:
                certificate = _certificate(hooks.cert_dir, hooks.service)
        operator = build_operator(
            options,
            client,
            provisioner,
            webhooks=None if certificate is None else WebhookServing(certificate, port=hooks.port),
        )
        log.info("manager_starting", pid=os.getpid(), provisioner=options.node_provisioner)
        async with anyio.create_task_group() as tg:
            tg.start_soon(operator.manager.run_until_signalled)
            await operator.manager.started.wait()  # the webhook server is listening
            if certificate is not None and hooks.service and certificate.ca.cert_pem:
                await _register_webhooks(client, certificate, hooks.service, hooks.port)
    finally:
        with anyio.CancelScope(shield=True):
            closer = getattr(provisioner, "aclose", None)
            if closer is not None:
                await closer()
            await client.close()
    return 0
