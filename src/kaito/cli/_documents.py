"""Reading Kubernetes YAML documents from files or stdin, with line-numbered errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import yaml

__all__ = ("Document", "DocumentError", "read_documents")


@attrs.frozen
class Document:
    """One YAML document: where it came from and what it holds."""

    source: str
    index: int
    data: Any

    @property
    def where(self) -> str:
        return f"{self.source}[{self.index}]"

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


@attrs.frozen
class DocumentError:
    """A file that could not be read or parsed as YAML."""

    source: str
    message: str


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def read_documents(paths: list[str]) -> Iterator[Document | DocumentError]:
    """Yield every non-empty YAML document of every path (``-`` is stdin), or its read error."""
    for path in paths:
        source = "<stdin>" if path == "-" else path
        try:
            text = _read(path)
        except OSError as exc:
            yield DocumentError(source, f"cannot read: {exc.strerror or exc}")
            continue
        except UnicodeDecodeError:
            yield DocumentError(source, "not UTF-8 text")
            continue
        index = 0
        try:
            for data in yaml.safe_load_all(text):
                if data is None:
                    continue
                yield Document(source, index, data)
                index += 1
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            problem = getattr(exc, "problem", None) or str(exc)
            yield DocumentError(where, f"malformed YAML: {problem}")
