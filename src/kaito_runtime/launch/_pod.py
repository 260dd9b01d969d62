"""What a pod knows about its place among the Workspace's pods, from its environment.

Runtime layer (launcher). A StatefulSet pod gets its ordinal from the
``apps.kubernetes.io/pod-index`` label, which the controller projects into ``POD_INDEX``
(upstream KAITO's variable); an Indexed
Job's pod has ``JOB_COMPLETION_INDEX``. Index 0 is the leader: the Ray head of a multi-node
inference Workspace, the main process's node of a multi-node tuning run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from kaito_runtime.launch._errors import EXIT_CONFIG, LaunchError

__all__ = ("INDEX_VARIABLES", "POD_INDEX_ENV", "outbound_ip", "pod_index")

POD_INDEX_ENV = "POD_INDEX"
INDEX_VARIABLES = (POD_INDEX_ENV, "JOB_COMPLETION_INDEX")


def pod_index(environ: Mapping[str, str] | None = None) -> int | None:
    """Return the pod's index from ``POD_INDEX`` or ``JOB_COMPLETION_INDEX``, or None if unset.

    Raises:
        LaunchError: the variable holds something other than a non-negative integer.
    """
    env = os.environ if environ is None else environ
    for name in INDEX_VARIABLES:
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit():
            raise LaunchError(
                f"{name}={raw!r} is not a pod index (a non-negative integer); project the "
                "apps.kubernetes.io/pod-index label into it, or pass the index as a flag",
                EXIT_CONFIG,
            )
        return int(raw)
    return None


def outbound_ip(host: str, port: int) -> str:
    """Return this machine's address on the route to ``host`` (no packet is sent).

    Ray and torch.distributed need an address other nodes can reach; the one the kernel picks to
    talk to the leader is it (in a pod, the pod IP).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        return str(sock.getsockname()[0])
