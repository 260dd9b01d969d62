"""Where the guide's example Workspaces live: in the wheel, or the repository's examples/."""

from __future__ import annotations

from pathlib import Path

__all__ = ("examples_dir",)


def examples_dir() -> Path:
    """The directory of example Workspaces (``examples/`` of the repository or the wheel)."""
    bundled = Path(__file__).parent / "examples"
    if bundled.is_dir():
        return bundled
    repo = Path(__file__).resolve().parents[2] / "examples"
    if repo.is_dir():
        return repo
    raise FileNotFoundError("the example Workspaces are not installed with this copy of kaito")
