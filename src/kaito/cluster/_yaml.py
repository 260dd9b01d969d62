"""YAML as Kubernetes reads it: YAML to JSON values, timestamps left as strings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ("YAMLError", "dump_yaml", "load_yaml", "load_yaml_documents")

YAMLError = yaml.YAMLError


class _Loader(yaml.CSafeLoader):
    """The C safe loader without the timestamp resolver (kube keeps dates as strings)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str | bytes) -> Any:
    """Parse one YAML document."""
    return yaml.load(text, Loader=_Loader)


def load_yaml_documents(text: str | bytes) -> Iterator[Any]:
    """Parse every document of a multi-document stream, skipping empty ones."""
    for document in yaml.load_all(text, Loader=_Loader):
        if document is not None:
            yield document


def dump_yaml(value: Any) -> bytes:
    """Serialise as block-style YAML (the ``application/yaml`` responses)."""
    return yaml.dump(
        value, Dumper=yaml.CSafeDumper, default_flow_style=False, sort_keys=False
    ).encode()
