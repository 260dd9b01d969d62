"""Ray, from the launcher's side: the ``ray start`` command lines and the GCS's list of nodes.

Runtime layer (launcher). Ray is imported only by :func:`list_ray_nodes` (PyPI ``ray``, the
``multinode`` extra; in the runtime image beside vLLM). The node list comes straight from the
GCS (``ray._raylet.GcsClient``, what ``ray status`` and Ray's Kubernetes autoscaler use), not
from ``ray.init()``, which would register a driver (a Ray job) on every probe.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = (
    "DEFAULT_RAY_PORT",
    "RayNode",
    "RayUnavailableError",
    "list_ray_nodes",
    "ray_head_command",
    "ray_worker_command",
    "tcp_check",
)

# Upstream KAITO's Ray port (pkg/model PortRayCluster), exposed by the Workspace's Service.
DEFAULT_RAY_PORT = 6379
# The GCS client otherwise waits up to a minute for an unreachable GCS before it fails.
_GCS_CONNECT_TIMEOUT_ENV = "RAY_py_gcs_connect_timeout_s"
_ALIVE = 0  # GcsNodeInfo.GcsNodeState.ALIVE


class RayUnavailableError(Exception):
    """The GCS cannot be asked (not reachable yet, or Ray is not installed); says why."""


@attrs.frozen
class RayNode:
    """One node the GCS knows: its address, whether it is alive, and its resources."""

    node_id: str
    address: str
    alive: bool
    is_head: bool
    resources: dict[str, float] = attrs.field(factory=dict)


def _ray_cli() -> list[str]:
    # Ray's console script may not be on PATH (a venv used without activation).
    return [sys.executable, "-m", "ray.scripts.scripts"]


def ray_head_command(port: int, node_ip: str | None, extra: Sequence[str] = ()) -> list[str]:
    """``ray start --head --block``: the head (GCS and a raylet) in the foreground."""
    command = [*_ray_cli(), "start", "--head", "--block", f"--port={port}"]
    command.append("--disable-usage-stats")
    if node_ip:
        command.append(f"--node-ip-address={node_ip}")
    return [*command, *extra]


def ray_worker_command(
    leader: str, port: int, node_ip: str | None, extra: Sequence[str] = ()
) -> list[str]:
    """``ray start --address=LEADER:PORT --block``: a raylet joining the head's cluster."""
    command = [*_ray_cli(), "start", f"--address={leader}:{port}", "--block"]
    if node_ip:
        command.append(f"--node-ip-address={node_ip}")
    return [*command, *extra]


def tcp_check(host: str, port: int, timeout: float) -> str | None:
    """Return None when ``host:port`` accepts a TCP connection, else the reason it does not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"{host} does not resolve ({exc.strerror})"
    except TimeoutError:
        return f"{host}:{port} did not answer within {timeout:g}s"
    except OSError as exc:
        return f"{host}:{port} refused the connection ({exc.strerror or exc})"


def _node(node_id: Any, info: Any) -> RayNode:
    return RayNode(
        node_id=node_id.hex() if hasattr(node_id, "hex") else str(node_id),
        address=str(info.node_manager_address),
        alive=int(info.state) == _ALIVE,
        is_head=bool(info.is_head_node),
        resources={str(k): float(v) for k, v in dict(info.resources_total).items()},
    )


def list_ray_nodes(gcs_address: str, timeout: float = 5.0) -> list[RayNode]:
    """Return the nodes the GCS at ``gcs_address`` (``host:port``) knows, alive or dead.

    Blocking (run it in a worker thread from async code). A TCP check comes first, so an
    unreachable GCS fails within ``timeout`` with the reason.

    Raises:
        RayUnavailableError: Ray is not installed, or the GCS cannot be reached or asked.
    """
    host, _, port = gcs_address.rpartition(":")
    reason = tcp_check(host, int(port), timeout)
    if reason is not None:
        raise RayUnavailableError(f"the Ray GCS is not reachable: {reason}")
    os.environ.setdefault(_GCS_CONNECT_TIMEOUT_ENV, str(max(1, round(timeout))))
    try:
        raylet = importlib.import_module("ray._raylet")
    except ImportError as exc:
        raise RayUnavailableError(
            f"Ray is not installed ({exc}); install the runtime with the multinode extra "
            "(pip install 'kaito[multinode]')"
        ) from None
    try:
        client = raylet.GcsClient(address=gcs_address)
        infos = client.get_all_node_info(timeout=timeout)
    except Exception as exc:  # RpcError and friends: Ray's own exception types
        raise RayUnavailableError(
            f"the Ray GCS at {gcs_address} did not answer: {type(exc).__name__}: {exc}"
        ) from None
    return sorted(
        (_node(node_id, info) for node_id, info in infos.items()),
        key=lambda n: (not n.is_head, n.address),
    )
