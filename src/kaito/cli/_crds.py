"""``kaito crds``: print (or write) the generated CustomResourceDefinitions."""

from __future__ import annotations

from pathlib import Path

import click

from kaito.api import render_crds
from kaito.cli import main

__all__ = ("crds",)

CRD_FILE = "kaito.sh_workspaces.yaml"


@main.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Write {CRD_FILE} into this directory instead of printing it.",
)
def crds(output_dir: Path | None) -> None:
    """Print the Workspace CRD generated from the API types."""
    text = render_crds()
    if output_dir is None:
        click.echo(text, nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CRD_FILE).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output_dir / CRD_FILE}")
