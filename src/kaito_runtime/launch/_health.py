"""Exec probes of multi-node inference pods (upstream's ``multi-node-health-check.py``).

Runtime layer (launcher). ``python -m kaito_runtime.launch health readiness|liveness`` exits 0
(healthy) or 1, printing one line the kubelet shows in the probe's event. As upstream:

- readiness (also the startup probe): the leader is ready when the server answers
  ``GET http://<leader>:<port>/health`` with 200; workers are always ready (they serve no
  traffic; the Service selects pod 0 only, and a worker's readiness depending on the leader
  would deadlock StatefulSet rolling updates);
- liveness: checked on the leader only (restarting a worker does not heal the cluster, the
  leader's restart does). Upstream fails it when an actor of the vLLM job is dead; here it
  fails when the GCS does not answer or fewer than ``--nodes`` nodes are alive, which is what a
  dead worker pod leads to.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Literal

import attrs

from kaito_runtime.launch._ray_nodes import DEFAULT_RAY_PORT, RayUnavailableError, list_ray_nodes

__all__ = ("DEFAULT_SERVER_PORT", "HealthCheck", "Probe", "check_health")

Probe = Literal["liveness", "readiness"]
DEFAULT_SERVER_PORT = 5000


@attrs.frozen
class HealthCheck:
    """One probe run: which probe, this pod's role, and where the leader's services are."""

    probe: Probe
    is_leader: bool
    leader_address: str
    ray_port: int = DEFAULT_RAY_PORT
    server_port: int = DEFAULT_SERVER_PORT
    nodes: int | None = None
    timeout: float = 5.0


def _readiness(check: HealthCheck) -> tuple[bool, str]:
    url = f"http://{check.leader_address}:{check.server_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=check.timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f'Get "{url}": {reason}'
    if status != 200:
        return False, f"{url} answered {status}"
    return True, f"{url} answered 200"


def _liveness(check: HealthCheck) -> tuple[bool, str]:
    gcs = f"{check.leader_address}:{check.ray_port}"
    try:
        nodes = list_ray_nodes(gcs, timeout=check.timeout)
    except RayUnavailableError as exc:
        return False, str(exc)
    alive = [n.address for n in nodes if n.alive]
    dead = [n.address for n in nodes if not n.alive]
    expected = check.nodes or 1
    if len(alive) < expected:
        lost = f"; dead: {', '.join(dead)}" if dead else ""
        return False, f"{len(alive)} of {expected} Ray nodes alive ({', '.join(alive)}){lost}"
    return True, f"{len(alive)} Ray nodes alive ({', '.join(alive)})"


def check_health(check: HealthCheck) -> tuple[bool, str]:
    """Run the probe; return (healthy, one-line reason)."""
    if not check.is_leader:
        return True, f"worker: {check.probe} is decided on the leader"
    if check.probe == "readiness":
        return _readiness(check)
    return _liveness(check)
