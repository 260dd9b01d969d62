"""``kaito up``: the embedded default.

For now it validates the example Workspaces of the guide with the admission code and prints each
one as the API server would store it (defaults applied, storage version) together with how it
fits its GPU nodes. The in-process cluster and the manager replace this when they land.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from kaito.api import (
    ValidationContext,
    check_workspace,
    convert_workspace,
    default_workspace,
    runtime_of,
)
from kaito.catalog import check_fit
from kaito.cli import main
from kaito.cli.documents import Document, read_documents
from kaito.examples import examples_dir

__all__ = ("up",)


@main.command()
@click.option(
    "--examples",
    "source",
    type=click.Path(exists=True, path_type=Path),
    help="Directory (or file) of Workspace YAML; default: the bundled guide examples.",
)
def up(source: Path | None) -> None:
    """Validate and print the guide's example Workspaces (the embedded default)."""
    root = source or examples_dir()
    paths = sorted(str(p) for p in root.rglob("*.yaml")) if root.is_dir() else [str(root)]
    ctx = ValidationContext(config_maps={})
    failed = False
    for doc in read_documents(paths):
        if not isinstance(doc, Document):
            click.echo(f"{doc.source}: {doc.message}", err=True)
            failed = True
            continue
        if doc.kind != "Workspace":
            continue
        result = check_workspace(doc.data, ctx)
        click.echo(f"# {doc.where} Workspace/{doc.name}: {'valid' if result.ok else 'INVALID'}")
        for problem in result.errors:
            click.echo(f"#   error: {problem}")
        for problem in result.warnings:
            click.echo(f"#   warning: {problem}")
        failed |= not result.ok
        ws = result.workspace
        if ws is None:
            continue
        preset_spec = (
            ws.inference.preset if ws.inference else ws.tuning.preset if ws.tuning else None
        )
        preset = ctx.presets.get(preset_spec.name) if preset_spec else None
        sku = ctx.skus.get(ws.resource.instance_type or "") if ws.resource else None
        if preset and sku and ws.inference is not None:
            runtime = runtime_of(ws, ctx)
            fit = check_fit(
                preset,
                sku,
                ws.resource.count or 1 if ws.resource else 1,
                runtime="vllm" if runtime == "vllm" else "transformers",
            )
            click.echo(f"#   runtime {runtime}: {fit.reason}")
        stored, _ = convert_workspace(default_workspace(doc.data))
        click.echo(yaml.safe_dump(stored, sort_keys=False).rstrip())
        click.echo("---")
    sys.exit(1 if failed else 0)
