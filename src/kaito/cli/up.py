"""``kaito up``: the embedded default — KAITO on an in-process cluster with simulated GPU nodes.

It starts the API server, installs the CRD and the admission webhooks, runs the manager with the
fake provisioner (or, with ``--node-provisioner aks``, the AKS backend against the AKS emulator;
with ``karpenter``, NodeClaims fulfilled by the simulated Karpenter), writes a kubeconfig, and
prints how to use kubectl against it; ``--apply`` applies Workspaces and shows their status table
as it changes. It runs in the foreground until SIGINT/SIGTERM (or, with ``--until-ready``, until
the applied Workspaces are ready).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import attrs
import click
import structlog

from kaito.cli import main
from kaito.cli.table import render_table, workspace_rows
from kaito.cluster import StatusError
from kaito.embedded import Embedded, embedded_kaito
from kaito.logging import configure_logging
from kaito.options import ManagerOptions

__all__ = ("up",)

log = structlog.get_logger(__name__)
_DONE = ("WorkspaceSucceeded", "WorkspaceReady")


@main.command()
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="API server port (0: a free one).",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("kaito.kubeconfig"),
    show_default=True,
    help="Where to write the kubeconfig for kubectl.",
)
@click.option(
    "--apply",
    "manifests",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Workspace YAML (file or directory) to apply once up (repeatable).",
)
@click.option(
    "--node-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a simulated GPU node takes to become Ready.",
)
@click.option(
    "--node-provisioner",
    type=click.Choice(("fake", "aks", "karpenter", "azure-gpu-provisioner")),
    default="fake",
    show_default=True,
    help="fake: Nodes appear; aks: agent pools through the real Azure SDK against the AKS "
    "emulator; karpenter / azure-gpu-provisioner: NodeClaims the simulated Karpenter fulfils.",
)
@click.option(
    "--until-ready",
    is_flag=True,
    help="Exit once every applied Workspace is ready (0) or failed (1).",
)
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="With --until-ready: give up after this many seconds.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def up(
    *,
    port: int,
    kubeconfig_out: Path,
    manifests: tuple[Path, ...],
    node_delay: float,
    node_provisioner: str,
    until_ready: bool,
    timeout: float,
    log_level: str,
) -> None:
    """Run KAITO on an in-process cluster (the embedded default)."""
    configure_logging(log_level)
    files = tuple(_manifest_files(manifests))
    if manifests and not files:
        raise click.UsageError(f"no .yaml, .yml or .json files in {', '.join(map(str, manifests))}")
    settings = _UpSettings(
        port, kubeconfig_out.resolve(), files, node_delay, until_ready, timeout, node_provisioner
    )
    sys.exit(anyio.run(_up, settings))


def _manifest_files(paths: tuple[Path, ...]) -> list[Path]:
    """Files to apply: each file as given, directories recursively (as ``kubectl apply -R``)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        else:
            out.append(path)
    return out


@attrs.frozen
class _UpSettings:
    port: int
    kubeconfig_out: Path
    manifests: tuple[Path, ...]
    node_delay: float
    until_ready: bool
    ready_within: float
    node_provisioner: str = "fake"


async def _up(settings: _UpSettings) -> int:
    """Run until done (``--until-ready``) or until SIGINT/SIGTERM, which ends it with 0."""
    outcome = 0
    async with anyio.create_task_group() as tg:
        # The handlers are in place before anything is printed: a signal at any point stops
        # cleanly instead of raising KeyboardInterrupt mid-start.
        await tg.start(_stop_on_signal, tg.cancel_scope)
        outcome = await _run(settings)
        tg.cancel_scope.cancel()
    return outcome


async def _run(settings: _UpSettings) -> int:
    port, kubeconfig_out, node_delay = settings.port, settings.kubeconfig_out, settings.node_delay
    options = ManagerOptions(
        metrics_address=None, probe_address=None, node_provisioner=settings.node_provisioner
    )
    # Only the owner of the kubeconfig (mode 0600) can use the cluster: TLS, an administrator
    # client certificate in the kubeconfig, anonymous requests refused, RBAC for everyone else.
    async with embedded_kaito(
        port=port,
        kubeconfig_out=kubeconfig_out,
        options=options,
        node_delay=node_delay,
        tls=True,
        authorization="RBAC",
    ) as kaito:
        click.echo(f"KAITO is up: API server {kaito.cluster.url}, webhooks {kaito.webhook_url}")
        if kaito.azure is not None:
            click.echo(
                f"  AKS emulator: ARM {kaito.azure.arm_url}, Entra "
                f"{kaito.azure.authority_host} (agent pools of {kaito.azure.cluster_id})"
            )
        if kaito.karpenter is not None:
            click.echo("  Karpenter simulator: kubectl get nodeclaims")
        click.echo(
            f"  export KUBECONFIG={kubeconfig_out}   # its credentials, readable by you only"
        )
        click.echo("  kubectl apply -f examples/inference/kaito_workspace_phi_3.yaml")
        click.echo("  kubectl get workspace -w")
        names: list[tuple[str, str]] = []
        for manifest in settings.manifests:
            try:
                applied = await kaito.cluster.client.apply_manifests(
                    manifest, field_manager="kaito-up"
                )
            except Exception as err:  # the API server's answer (e.g. the webhook's denial)
                click.echo(f"error: {manifest}: {getattr(err, 'message', err)}", err=True)
                return 1
            for obj in applied:
                click.echo(f"{obj['kind'].lower()}/{obj['metadata']['name']} applied")
                if obj["kind"] == "Workspace":
                    names.append(
                        (obj["metadata"].get("namespace") or "default", obj["metadata"]["name"])
                    )
        return await _watch_status(kaito, names, settings.until_ready, settings.ready_within)


async def _stop_on_signal(
    scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            click.echo(f"received {signal.Signals(signum).name}: stopping", err=True)
            scope.cancel()
            return


async def _workspaces(
    kaito: Embedded, names: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any] | None]:
    """Each applied Workspace as the server has it now, or ``None`` once it has been deleted."""
    found: dict[tuple[str, str], dict[str, Any] | None] = {}
    for namespace, name in names:
        try:
            found[(namespace, name)] = await kaito.cluster.client.get(
                "kaito.sh/v1beta1", "Workspace", name, namespace
            )
        except StatusError as err:
            if err.code != 404:
                raise
            found[(namespace, name)] = None
    return found


def _finished(ws: dict[str, Any]) -> bool | None:
    """True when ready/succeeded, False when failed, None while in progress."""
    state = (ws.get("status") or {}).get("state")
    if state in ("Ready", "Succeeded"):
        return True
    if state == "Failed":
        return False
    return None


async def _watch_status(
    kaito: Embedded, names: list[tuple[str, str]], until_ready: bool, within: float
) -> int:
    """Print the status table whenever it changes; with ``until_ready`` return the outcome.

    A Workspace deleted meanwhile (``kubectl delete workspace``) leaves the table with a
    ``workspace/NAME deleted`` line, and comes back if it is applied again; with
    ``until_ready`` a deletion counts as a failure.
    """
    shown = ""
    gone: set[tuple[str, str]] = set()
    deadline = anyio.current_time() + within
    while True:
        if names:
            found = await _workspaces(kaito, names)
            for key, ws in found.items():
                if ws is None and key not in gone:
                    click.echo(f"workspace/{key[1]} deleted")
                    gone.add(key)
                elif ws is not None:
                    gone.discard(key)
            workspaces = [ws for ws in found.values() if ws is not None]
            rows = workspace_rows(workspaces)
            table = render_table([r[:-1] for r in rows])  # AGE changes every second; not news
            if table != shown:
                click.echo("")
                click.echo(render_table(rows))
                shown = table
            outcomes = [False if ws is None else _finished(ws) for ws in found.values()]
            if until_ready and all(o is not None for o in outcomes):
                for namespace, name in sorted(gone):
                    click.echo(f"error: workspace/{name} in {namespace} was deleted", err=True)
                return 0 if all(outcomes) else 1
        elif until_ready:
            return 0
        if until_ready and anyio.current_time() > deadline:
            click.echo(f"error: not ready within {within:g}s", err=True)
            return 1
        await anyio.sleep(0.5)
