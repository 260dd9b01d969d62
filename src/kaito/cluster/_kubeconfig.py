"""Kubeconfig documents that kubectl and kubernetes-asyncio use unchanged."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ("build_kubeconfig", "write_kubeconfig")


def build_kubeconfig(
    server: str,
    *,
    ca_pem: bytes | None = None,
    token: str | None = None,
    name: str = "kaito-testing",
    namespace: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context, selected as current."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(config: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML readable only by the owner; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=False)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return target
