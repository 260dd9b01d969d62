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
    client_certificate: tuple[bytes, bytes] | None = None,
    name: str = "kaito-testing",
    namespace: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context, selected as current.

    ``client_certificate`` is (certificate PEM, key PEM), written inline as kind and k3s write
    their admin credentials; ``token`` a bearer token.
    """
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, Any] = {}
    if client_certificate is not None:
        cert_pem, key_pem = client_certificate
        user["client-certificate-data"] = base64.b64encode(cert_pem).decode()
        user["client-key-data"] = base64.b64encode(key_pem).decode()
    if token:
        user["token"] = token
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
    """Write ``config`` as YAML readable only by the owner (mode 0600, also when the file
    existed with a wider mode); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=False)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return target
