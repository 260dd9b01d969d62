"""``kaito up``: KAITO on an in-process cluster whose Pods run for real on this machine.

It starts the API server (TLS, RBAC), installs the CRD and the admission webhooks, runs the
manager with the fake provisioner (or, with ``--node-provisioner aks``, the AKS backend against
the AKS emulator; with ``karpenter``, NodeClaims fulfilled by the simulated Karpenter), and, by
default, the local kubelet with the system CPU node and Service networking, so the runtime Pods
run as processes of this machine. Around the cluster it starts the local stack
(:mod:`kaito.local`): the model hub (``--model-dir`` folders, or stand-ins built here), the
guide's dataset and the OCI registry adapters go through. ``--apply`` applies Workspaces and
shows their status table as it changes; ``--guide`` runs the whole guide (tune, push, serve,
``/chat``). It runs in the foreground until SIGINT/SIGTERM (or, with ``--until-ready``, until
the applied Workspaces are ready or the guide has answered). ``--kubelet simulated`` keeps the
old behaviour: nothing runs, Pods are reported Running at once.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import click
import structlog

from kaito.cli import main
from kaito.cli._table import render_table, workspace_rows
from kaito.cluster import LocalKubelet, SqliteStorage, StatusError
from kaito.embedded import Embedded, embedded_kaito
from kaito.local import (
    GuideError,
    LocalSettings,
    LocalStack,
    Reporter,
    StackError,
    local_stack,
    run_guide,
    runtime_has_vllm,
)
from kaito.logging import configure_logging
from kaito.options import FEATURE_GATES, ManagerOptions

__all__ = ("up",)

log = structlog.get_logger(__name__)
_DONE = ("WorkspaceSucceeded", "WorkspaceReady")
#: The guide's local Workspaces, beside the package in a checkout (``examples/local``).
_GUIDE_DIR = Path(__file__).resolve().parents[3] / "examples" / "local"


def _model_dir(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Path]:
    from kaito.catalog import preset_catalog

    catalog = preset_catalog()
    found: dict[str, Path] = {}
    for value in values:
        preset, sep, folder = value.partition("=")
        if not sep or not preset or not folder:
            raise click.BadParameter(
                f"{value!r} is not PRESET=PATH (e.g. phi-3-mini-128k-instruct=/models/phi3)"
            )
        entry = catalog.get(preset)
        if entry is None:
            raise click.BadParameter(
                f"{preset!r} is not a preset; known: {', '.join(catalog.names())}"
            )
        path = Path(folder).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise click.BadParameter(
                f"{path} has no config.json: give the folder of the model's Hugging Face files"
            )
        found[entry.model_id] = path
    return found


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
    "--guide",
    is_flag=True,
    help="Run the guide: tune Phi-3 into an adapter image, serve Phi-3 with it, ask /chat.",
)
@click.option(
    "--guide-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="With --guide: the folder of the guide's local Workspaces (default: examples/local).",
)
@click.option(
    "--kubelet",
    type=click.Choice(("local", "simulated")),
    default="local",
    show_default=True,
    help="local: Pods run as processes of this machine; simulated: they are reported Running "
    "at once and nothing runs.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the cluster's objects, the registry's blobs and the model cache here; "
    "kaito up started again on it resumes (default: nothing kept but the model cache).",
)
@click.option(
    "--registry",
    default=None,
    metavar="HOST:PORT",
    help="Use this running OCI registry instead of starting docker-registry.",
)
@click.option(
    "--registry-port",
    default=5000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Where the started registry listens on 127.0.0.1 (0: a free port).",
)
@click.option(
    "--files-port",
    default=5001,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Where the model hub and dataset server listen on 127.0.0.1 (0: a free port).",
)
@click.option(
    "--model-dir",
    "model_dirs",
    multiple=True,
    metavar="PRESET=PATH",
    callback=_model_dir,
    help="Serve the preset's real weights from this folder (repeatable).",
)
@click.option(
    "--weights",
    type=click.Choice(("auto", "local", "hub")),
    default="auto",
    show_default=True,
    help="local: --model-dir folders, else stand-ins with random weights; hub: download from "
    "the Hugging Face Hub; auto: hub with a GPU that reaches it, else local.",
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
    help="Exit once every applied Workspace is ready (0) or failed (1), or the guide answered.",
)
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="With --until-ready: give up after this many seconds (--guide: per step).",
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
    guide: bool,
    guide_dir: Path | None,
    kubelet: str,
    data_dir: Path | None,
    registry: str | None,
    registry_port: int,
    files_port: int,
    model_dirs: dict[str, Path],
    weights: str,
    node_delay: float,
    node_provisioner: str,
    until_ready: bool,
    timeout: float,
    log_level: str,
) -> None:
    """Run KAITO on an in-process cluster whose Pods run on this machine."""
    files = tuple(_manifest_files(manifests))
    if manifests and not files:
        raise click.UsageError(f"no .yaml, .yml or .json files in {', '.join(map(str, manifests))}")
    if guide and kubelet == "simulated":
        raise click.UsageError("--guide runs real Pods: it needs --kubelet local (the default)")
    configure_logging(log_level)
    local = LocalSettings(
        data_dir=data_dir.resolve() if data_dir is not None else None,
        registry=registry,
        registry_port=registry_port,
        files_port=files_port,
        weights=weights,  # type: ignore[arg-type]  # click.Choice
        model_dirs=model_dirs,
    )
    # Without vLLM in the runtime's environment, the Pods run the transformers runtime, as
    # upstream's --feature-gates=vLLM=false renders it.
    vllm = kubelet == "simulated" or runtime_has_vllm(local.python)
    settings = _UpSettings(
        port,
        kubeconfig_out.resolve(),
        files,
        node_delay,
        until_ready,
        timeout,
        node_provisioner,
        kubelet=kubelet,
        local=local,
        guide_dir=(guide_dir or _GUIDE_DIR).resolve() if guide else None,
        vllm=vllm,
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
    kubelet: str = "local"
    local: LocalSettings = attrs.field(factory=LocalSettings)
    #: ``--guide``: the folder of its Workspaces (None: no guide).
    guide_dir: Path | None = None
    #: The vLLM feature gate (off where the runtime's environment has no vLLM).
    vllm: bool = True


def _say(line: str) -> None:
    click.echo(f"* {line}")


async def _up(settings: _UpSettings) -> int:
    """Run until done (``--until-ready``) or until SIGINT/SIGTERM, which ends it with 0."""
    outcome = 0
    async with anyio.create_task_group() as tg:
        # The handlers are in place before anything is printed: a signal at any point stops
        # cleanly instead of raising KeyboardInterrupt mid-start.
        await tg.start(_stop_on_signal, tg.cancel_scope)
        try:
            outcome = await _run(settings)
        except StackError as err:
            click.echo(f"error: {err}", err=True)
            outcome = 1
        tg.cancel_scope.cancel()
    return outcome


@asynccontextmanager
async def _local(
    settings: _UpSettings, say: Callable[[str], None]
) -> AsyncIterator[tuple[LocalStack | None, LocalKubelet | None, SqliteStorage | None]]:
    """The local stack and kubelet (``--kubelet local``) and the durable store (``--data-dir``)."""
    async with AsyncExitStack() as stack:
        data_dir = settings.local.data_dir
        store: SqliteStorage | None = None
        if data_dir is not None:
            path = data_dir / "cluster.sqlite"
            resumed = path.exists()
            store = await SqliteStorage.open(path)
            stack.push_async_callback(store.close)
            if resumed:
                say(f"resuming the cluster kept in {path}")
        if settings.kubelet == "simulated":
            yield None, None, store
            return
        local = await stack.enter_async_context(local_stack(settings.local, say=say))
        kubelet = LocalKubelet(
            root=data_dir / "kubelet" if data_dir is not None else None,
            images=local.image_table(),
        )
        yield local, kubelet, store


async def _run(settings: _UpSettings) -> int:
    port, kubeconfig_out, node_delay = settings.port, settings.kubeconfig_out, settings.node_delay
    real = settings.kubelet == "local"
    options = ManagerOptions(
        metrics_address=None,
        probe_address=None,
        node_provisioner=settings.node_provisioner,
        feature_gates={**FEATURE_GATES, "vLLM": settings.vllm},
        # A local cluster: the dataset server on loopback is the guide's data URL.
        allow_local_urls=real,
    )
    # Only the owner of the kubeconfig (mode 0600) can use the cluster: TLS, an administrator
    # client certificate in the kubeconfig, anonymous requests refused, RBAC for everyone else.
    async with (
        _local(settings, _say) as (stack, kubelet, store),
        embedded_kaito(
            port=port,
            kubeconfig_out=kubeconfig_out,
            options=options,
            node_delay=node_delay,
            tls=True,
            authorization="RBAC",
            kubelet=kubelet,
            store=store,
            system_node=real,
        ) as kaito,
    ):
        _banner(kaito, stack, settings)
        try:
            async with anyio.create_task_group() as tg:
                if stack is not None:
                    models = stack.models if stack.weights == "local" else None
                    tg.start_soon(Reporter(kaito.cluster, models, _say).run)
                outcome = await _work(kaito, stack, settings)
                tg.cancel_scope.cancel()
        finally:
            if stack is not None:
                _say("stopping every Pod's processes, the registry and the model hub")
        return outcome


def _banner(kaito: Embedded, stack: LocalStack | None, settings: _UpSettings) -> None:
    kubeconfig_out = settings.kubeconfig_out
    click.echo(f"KAITO is up: API server {kaito.cluster.url}, webhooks {kaito.webhook_url}")
    if kaito.azure is not None:
        click.echo(
            f"  AKS emulator: ARM {kaito.azure.arm_url}, Entra "
            f"{kaito.azure.authority_host} (agent pools of {kaito.azure.cluster_id})"
        )
    if kaito.karpenter is not None:
        click.echo("  Karpenter simulator: kubectl get nodeclaims")
    if stack is not None:
        click.echo(
            "  Pods run on this machine (local kubelet); Services answer on their cluster IPs"
        )
        if stack.registry is not None:
            click.echo(f"  OCI registry: {stack.registry.host}")
        click.echo(f"  model hub and the guide's data: {stack.files_url} ({stack.weights} weights)")
        if not settings.vllm:
            click.echo("  no vLLM in the runtime's environment: inference runs on transformers")
    click.echo(f"  export KUBECONFIG={kubeconfig_out}   # its credentials, readable by you only")
    if stack is not None:
        click.echo("  kubectl apply -f examples/local/kaito_workspace_tuning_phi_3.yaml")
    else:
        click.echo("  kubectl apply -f examples/inference/kaito_workspace_phi_3.yaml")
    click.echo("  kubectl get workspace -w")


async def _work(kaito: Embedded, stack: LocalStack | None, settings: _UpSettings) -> int:
    names: list[tuple[str, str]] = []
    for manifest in settings.manifests:
        try:
            applied = await kaito.cluster.client.apply_manifests(manifest, field_manager="kaito-up")
        except Exception as err:  # the API server's answer (e.g. the webhook's denial)
            click.echo(f"error: {manifest}: {getattr(err, 'message', err)}", err=True)
            return 1
        for obj in applied:
            click.echo(f"{obj['kind'].lower()}/{obj['metadata']['name']} applied")
            if obj["kind"] == "Workspace":
                names.append(
                    (obj["metadata"].get("namespace") or "default", obj["metadata"]["name"])
                )
    if settings.guide_dir is not None and stack is not None:
        try:
            result = await run_guide(
                kaito.cluster, stack, settings.guide_dir, say=_say, within=settings.ready_within
            )
        except GuideError as err:
            click.echo(f"error: {err}", err=True)
            return 1
        click.echo(json.dumps(result.answer, indent=2))
        _say(f"the guide ran in {result.seconds:.0f}s; {result.chat_url} keeps answering")
        if settings.until_ready:
            return 0
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
