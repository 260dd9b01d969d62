"""Reading Kubernetes YAML documents from files or stdin, as the API server would read them.

Every document goes through ``kaito.apimachinery``'s decoder (``sigs.k8s.io/yaml`` semantics and
the API server's limits), so what ``kaito validate`` reads is what the cluster would store; errors
carry the line they are on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from kaito.apimachinery import DecodeError, decode_yaml_stream

__all__ = ("Document", "DocumentError", "read_documents")


@attrs.frozen
class Document:
    """One YAML document: where it came from, what it holds, the keys it gave twice."""

    source: str
    index: int
    data: Any
    duplicates: tuple[str, ...] = ()
    line: int = 1

    @property
    def where(self) -> str:
        return f"{self.source}[{self.index}]"

    @property
    def kind(self) -> str:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""


@attrs.frozen
class DocumentError:
    """A file, or one document of it, that could not be read or decoded."""

    source: str
    message: str


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def read_documents(paths: list[str]) -> Iterator[Document | DocumentError]:
    """Yield every non-empty document of every path (``-`` is stdin), or its error."""
    for path in paths:
        source = "<stdin>" if path == "-" else path
        try:
            data = _read(path)
        except OSError as exc:
            yield DocumentError(source, f"cannot read: {exc.strerror or exc}")
            continue
        for decoded in decode_yaml_stream(data):
            if isinstance(decoded, DecodeError):
                where = source
                if decoded.line is not None:
                    where += f":{decoded.line}"
                    if decoded.column is not None:
                        where += f":{decoded.column}"
                yield DocumentError(where, decoded.message)
                continue
            yield Document(
                source, decoded.position, decoded.value, decoded.duplicates, decoded.line
            )
