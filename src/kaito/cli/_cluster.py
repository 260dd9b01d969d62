"""``kaito cluster``: run the in-process Kubernetes API server (``kaito.cluster``) on its own."""

from __future__ import annotations

import ipaddress
import signal
import sys
from pathlib import Path

import anyio
import attrs
import click
import structlog

from kaito.cli import main
from kaito.cluster import Controllers, start_cluster
from kaito.logging import configure_logging

__all__ = ("cluster", "serve")

log = structlog.get_logger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_node(spec: str) -> tuple[str, int]:
    name, _, gpus = spec.partition("=")
    if not name or (gpus and not gpus.isdigit()):
        raise click.BadParameter(
            f"--node {spec!r} must look like NAME or NAME=GPUS, for example gpu-1=4"
        )
    return name, int(gpus or 0)


@main.group()
def cluster() -> None:
    """The in-process Kubernetes API server used by tests, local development and CI."""


@cluster.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one.",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a kubeconfig here.",
)
@click.option(
    "--tls/--no-tls",
    default=True,
    show_default=True,
    help="Serve HTTPS with a generated CA and require the credentials written to the kubeconfig "
    "(an administrator client certificate). --no-tls serves plain HTTP on loopback to anyone on "
    "this machine.",
)
@click.option(
    "--token",
    envvar="KAITO_CLUSTER_TOKEN",
    help="Also accept this administrator bearer token, written to the kubeconfig (env "
    "KAITO_CLUSTER_TOKEN); needs TLS.",
)
@click.option(
    "--authorization-mode",
    type=click.Choice(["RBAC", "AlwaysAllow"]),
    default="RBAC",
    show_default=True,
    help="RBAC: Roles, ClusterRoles and their bindings decide (the kubeconfig's administrator is "
    "in system:masters); AlwaysAllow: any authenticated request may do anything.",
)
@click.option(
    "--crds",
    "crds",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="CRD manifest file or directory to install at start (repeatable).",
)
@click.option(
    "--node", "nodes", multiple=True, help="Register a Ready node NAME or NAME=GPUS (repeatable)."
)
@click.option(
    "--controllers/--no-controllers",
    default=True,
    show_default=True,
    help="Run the simulated scheduler, workload controllers, kubelet and garbage collector.",
)
@click.option(
    "--kubelet",
    type=click.Choice(["simulated", "local"]),
    default="simulated",
    show_default=True,
    help="simulated: Pods report Running and Ready at once; local: Pods run as processes of "
    "this machine (see docs/local-kubelet.md).",
)
@click.option(
    "--system-node/--no-system-node",
    default=False,
    show_default=True,
    help="Register an untainted CPU node sized like this machine (as AKS's system pool).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(
    *,
    host: str,
    port: int,
    kubeconfig_out: Path | None,
    tls: bool,
    token: str | None,
    authorization_mode: str,
    crds: tuple[Path, ...],
    nodes: tuple[str, ...],
    controllers: bool,
    kubelet: str,
    system_node: bool,
    log_level: str,
) -> None:
    """Serve a cluster until interrupted (SIGINT or SIGTERM).

    By default only the owner of the written kubeconfig (mode 0600) can use it: HTTPS, a client
    certificate in the kubeconfig, anonymous requests refused with 401, as kind and k3s do.
    """
    configure_logging(log_level)
    if not tls and not _is_loopback(host):
        raise click.BadParameter(
            f"--host {host!r} is not loopback; plain HTTP is only served on loopback; drop --no-tls"
        )
    if token and not tls:
        raise click.UsageError(
            "--token needs TLS: kubectl and client-go never send a bearer token over plain HTTP, "
            "so every command with that kubeconfig would get 401 Unauthorized; drop --no-tls "
            "(the kubeconfig then carries a client certificate and the token)"
        )
    if tls and kubeconfig_out is None:
        raise click.UsageError(
            "--kubeconfig-out is required with TLS: the cluster's credentials exist only in "
            "the kubeconfig it writes (or serve plain HTTP to anyone with --no-tls)"
        )
    if not tls:
        click.echo(
            "warning: --no-tls serves plain HTTP without authentication: anyone on this machine "
            "can use this cluster, read its Secrets and run its workloads; drop --no-tls to "
            "require the credentials in the kubeconfig",
            err=True,
        )
    settings = _Settings(
        host=host,
        port=port,
        kubeconfig_out=kubeconfig_out,
        tls=tls,
        token=token,
        authorization=authorization_mode,
        crds=crds,
        nodes=tuple(_parse_node(n) for n in nodes),
        controllers=controllers,
        kubelet=kubelet,
        system_node=system_node,
    )
    anyio.run(_serve, settings)


@attrs.frozen
class _Settings:
    host: str
    port: int
    kubeconfig_out: Path | None
    tls: bool
    token: str | None
    authorization: str
    crds: tuple[Path, ...]
    nodes: tuple[tuple[str, int], ...]
    controllers: bool
    kubelet: str = "simulated"
    system_node: bool = False


async def _serve(settings: _Settings) -> None:
    kubeconfig_out = settings.kubeconfig_out
    async with start_cluster(
        host=settings.host,
        port=settings.port,
        tls=settings.tls,
        token=settings.token,
        authorization=settings.authorization,
        crds=settings.crds,
        controllers=Controllers.all() if settings.controllers else Controllers.api_only(),
        kubelet="local" if settings.kubelet == "local" else "simulated",
        system_node=settings.system_node,
    ) as running:
        for name, gpus in settings.nodes:
            await running.add_node(name, gpus=gpus)
        if kubeconfig_out is not None:
            running.write_kubeconfig(kubeconfig_out)
        log.info(
            "cluster_ready",
            url=running.url,
            kubeconfig=str(kubeconfig_out) if kubeconfig_out else None,
        )
        # Say "ready" only once a signal stops us cleanly (a SIGINT before would be a traceback).
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            print(
                f"cluster ready at {running.url}"
                + (f" (kubeconfig {kubeconfig_out})" if kubeconfig_out else ""),
                flush=True,
            )
            async for received in signals:
                log.info("cluster_stopping", signal=signal.Signals(received).name)
                break
    sys.stdout.flush()
