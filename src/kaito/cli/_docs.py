"""``kaito docs``: regenerate the reference docs (the Workspace API, presets, GPU SKUs)."""

from __future__ import annotations

from pathlib import Path

import click

from kaito.cli import main
from kaito.reference import render_reference

__all__ = ("docs",)


@main.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/reference"),
    show_default=True,
    help="Where to write workspace.md, presets.md and skus.md.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a file is out of date.")
def docs(output_dir: Path, check: bool) -> None:
    """Write the reference docs generated from the API types and the catalogs."""
    stale = []
    for name, text in render_reference().items():
        path = output_dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            output_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            click.echo(f"wrote {path}")
    if check and stale:
        raise click.ClickException(
            "out of date: " + ", ".join(map(str, stale)) + "; run `kaito docs`"
        )
