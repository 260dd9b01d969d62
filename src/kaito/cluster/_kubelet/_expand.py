"""Kubernetes' ``$(VAR)`` expansion, as the kubelet applies it to env values, command and args.

``$(NAME)`` becomes the value of ``NAME`` when it is defined and stays as written otherwise;
``$$`` is an escaped ``$``; any other ``$`` (a lone one, ``$(`` without a closing parenthesis)
is kept as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ("expand", "expand_strict")


def _expand(text: str, lookup: Callable[[str], str | None]) -> tuple[str, bool]:
    out: list[str] = []
    found_all = True
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] != "$" or cursor + 1 >= len(text):
            cursor += 1
            continue
        out.append(text[checkpoint:cursor])
        following = text[cursor + 1]
        if following == "$":
            out.append("$")
            cursor += 2
        elif following == "(":
            closer = text.find(")", cursor + 2)
            if closer < 0:
                out.append("$(")
                cursor += 2
            else:
                name = text[cursor + 2 : closer]
                value = lookup(name)
                if value is None:
                    found_all = False
                    out.append(f"$({name})")
                else:
                    out.append(value)
                cursor = closer + 1
        else:
            out.append("$" + following)
            cursor += 2
        checkpoint = cursor
    out.append(text[checkpoint:])
    return "".join(out), found_all


def expand(text: str, *contexts: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references in ``text`` from the first context that defines ``VAR``."""

    def lookup(name: str) -> str | None:
        for context in contexts:
            if name in context:
                return context[name]
        return None

    return _expand(text, lookup)[0]


def expand_strict(text: str, values: Mapping[str, str]) -> str | None:
    """Expand as ``subPathExpr`` does: ``None`` when a referenced variable is not defined."""
    result, found_all = _expand(text, values.get)
    return result if found_all else None
