"""The ``kaito`` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from kaito import __version__

__all__ = ("main",)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kaito")
def main() -> None:
    """KAITO, the Kubernetes AI Toolchain Operator, in Python."""


def _register() -> None:
    # Subcommands register themselves on import; keep one line per module.
    from kaito.cli import _commands  # noqa: F401


_register()
