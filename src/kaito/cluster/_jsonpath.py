"""The subset of kubectl JSONPath used by printer columns and scale paths:
``.a.b``, ``[0]``, ``[*]``, ``['x.y']`` and filters ``[?(@.type=="Ready")]``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ("JsonPathError", "compile_path", "evaluate")

_STEP = re.compile(
    r"""\.(?P<field>(?:[A-Za-z0-9_\-$/]|\\.)+)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[(?P<star>\*)\]"""
    r"""|\['(?P<quoted>[^']*)'\]"""
    r"""|\[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_\-]+)+)\s*(?P<op>==|!=)\s*(?P<fvalue>"[^"]*"|'[^']*'|[^)\s]+)\s*\)\]"""
)


class JsonPathError(ValueError):
    """A path outside the supported subset."""


Step = tuple[str, Any]


@lru_cache(maxsize=512)
def compile_path(path: str) -> tuple[Step, ...]:
    """Parse a path once; ``{...}`` braces are optional."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None:
            raise JsonPathError(
                f"JSONPath {path!r} is not supported at {text[pos:]!r}; use .field, [n], [*] or "
                '[?(@.f=="v")]'
            )
        if match.group("field") is not None:
            steps.append(("field", re.sub(r"\\(.)", r"\1", match.group("field"))))
        elif match.group("index") is not None:
            steps.append(("index", int(match.group("index"))))
        elif match.group("star") is not None:
            steps.append(("star", None))
        elif match.group("quoted") is not None:
            steps.append(("field", match.group("quoted")))
        else:
            raw = match.group("fvalue")
            value: Any = raw[1:-1] if raw[0] in "\"'" else _literal(raw)
            steps.append(
                (
                    "filter",
                    (tuple(match.group("fpath")[1:].split(".")), match.group("op") == "==", value),
                )
            )
        pos = match.end()
    return tuple(steps)


def _literal(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def _get(node: Any, fields: tuple[str, ...]) -> Any:
    for field in fields:
        if not isinstance(node, dict) or field not in node:
            return _ABSENT
        node = node[field]
    return node


_ABSENT = object()


def evaluate(path: str, obj: Any) -> list[Any]:
    """Every value ``path`` selects in ``obj`` (empty when nothing matches)."""
    current = [obj]
    for kind, arg in compile_path(path):
        following: list[Any] = []
        for node in current:
            if kind == "field":
                if isinstance(node, dict) and arg in node:
                    following.append(node[arg])
            elif kind == "index":
                if isinstance(node, list) and -len(node) <= arg < len(node):
                    following.append(node[arg])
            elif kind == "star":
                if isinstance(node, list):
                    following.extend(node)
                elif isinstance(node, dict):
                    following.extend(node.values())
            else:
                fields, equal, value = arg
                items = node if isinstance(node, list) else [node]
                for item in items:
                    found = _get(item, fields)
                    if found is not _ABSENT and (found == value) == equal:
                        following.append(item)
        current = following
    return current
