"""Fixtures for deploy/: the rendered overlays, the CRDs a cluster needs to take them, kubectl."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kaito.cluster._karpenter import nodeclaim_crd
from tests.cluster.conftest import Kubectl as _Kubectl

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
#: Every kustomization a platform team applies, by the name tests use for it.
OVERLAYS = {
    "default": DEPLOY,
    "base": DEPLOY / "base",
    "aks": DEPLOY / "overlays" / "aks",
    "karpenter": DEPLOY / "overlays" / "karpenter",
}
SERVICEMONITOR_CRD = Path(__file__).parent / "data" / "servicemonitors.monitoring.coreos.com.yaml"


def prerequisite_crds() -> list[Any]:
    """The CRDs a cluster must serve before deploy/ applies: the ServiceMonitor's (the
    Prometheus Operator's, here a checked-in minimal copy) and Karpenter's NodeClaim."""
    return [SERVICEMONITOR_CRD, nodeclaim_crd()]


RELEASE_NAMESPACE = "kaito-workspace"
SERVICE_ACCOUNT = f"system:serviceaccount:{RELEASE_NAMESPACE}:kaito-workspace"


@functools.cache
def rendered(overlay: str) -> str:
    """``kubectl kustomize`` of an overlay (cached: the files do not change during a run)."""
    return subprocess.run(
        ["kubectl", "kustomize", str(OVERLAYS[overlay])],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


@functools.cache
def _parsed(overlay: str) -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(d for d in yaml.load_all(rendered(overlay), Loader=loader) if d)


def documents(overlay: str) -> list[dict[str, Any]]:
    """The rendered objects of an overlay (fresh copies: callers may change them)."""
    return copy.deepcopy(list(_parsed(overlay)))


def find(overlay: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """The one rendered object of ``kind`` (and ``name``)."""
    found = [
        d for d in documents(overlay)
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]  # fmt: skip
    assert len(found) == 1, f"{overlay}: {len(found)} {kind} named {name}"
    return found[0]


class Kubectl(_Kubectl):
    """The real kubectl with its own kubeconfig and cache; no ``--namespace`` unless given (a
    platform team types ``kubectl apply -k deploy/``)."""

    def __init__(self, kubeconfig: Path, cache_dir: Path, namespace: str = "") -> None:
        super().__init__(kubeconfig, cache_dir, namespace)

    def command(self, *args: str) -> list[str]:
        namespace = ["--namespace", self.namespace] if self.namespace else []
        return ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir",
                str(self.cache_dir), *namespace, *args]  # fmt: skip


def environment() -> dict[str, str]:
    """The environment for processes started by tests (the source tree first on the path)."""
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}"}


def manager_container(overlay: str) -> dict[str, Any]:
    """The manager container of the overlay's Deployment."""
    deployment = find(overlay, "Deployment", "kaito-workspace")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def container_env(overlay: str, *, namespace: str = RELEASE_NAMESPACE) -> dict[str, str]:
    """The manager's environment as a kubelet builds it: ``envFrom`` ConfigMaps, then ``env``
    (values and the namespace's ``fieldRef``)."""
    container = manager_container(overlay)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        config_map = find(overlay, "ConfigMap", source["configMapRef"]["name"])
        env.update(config_map.get("data") or {})
    for item in container.get("env") or ():
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, item
            env[item["name"]] = namespace
    return env


def manager_args(overlay: str, *, namespace: str = RELEASE_NAMESPACE) -> list[str]:
    """The manager's arguments with ``$(VAR)`` expanded from its environment, as a kubelet does."""
    env = container_env(overlay, namespace=namespace)
    args = []
    for raw in manager_container(overlay)["args"]:
        expanded = raw
        for name, value in env.items():
            expanded = expanded.replace(f"$({name})", value)
        args.append(expanded)
    return args
