"""The system node: an untainted CPU node sized like this machine, as an AKS cluster has its system
pool, so ordinary Pods (the guide's ``curl`` Pod) have somewhere to run."""

from __future__ import annotations

import os
from typing import Final

__all__ = ("SYSTEM_NODE_LABELS", "SYSTEM_NODE_NAME", "host_capacity")

SYSTEM_NODE_NAME: Final = "kaito-system"
SYSTEM_NODE_LABELS: Final = {
    "kubernetes.azure.com/mode": "system",
    "kubernetes.azure.com/agentpool": "system",
    "agentpool": "system",
    "node.kubernetes.io/instance-type": "local",
}


def host_capacity() -> tuple[str, str]:
    """This machine's CPUs and memory as quantities (``"2"``, ``"24Gi"``)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory_kib = 0
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory_kib = int(line.split()[1])
                    break
    except OSError:
        memory_kib = 0
    return str(cpus), f"{memory_kib}Ki" if memory_kib else "8Gi"
