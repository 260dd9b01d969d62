"""Hostile documents shared by the tests of every front door."""

from __future__ import annotations

import itertools

__all__ = ("alias_bomb",)


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """A "billion laughs" YAML mapping: under 1 KB as written, ``width**levels`` leaves once
    every alias is expanded (each level a list of ``width`` aliases of the one before)."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{','.join(['x'] * width)}]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * width)}]")
    return "\n".join(lines) + "\n"
