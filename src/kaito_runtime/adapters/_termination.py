"""The Kubernetes termination message: one line a failed container leaves for ``kubectl``.

Kubernetes reads ``/dev/termination-log`` (the container's ``terminationMessagePath``) when a
container exits and shows it in the pod status; it keeps at most 4096 bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from kaito_runtime.contract import (
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    TERMINATION_MESSAGE_MAX_BYTES,
)

__all__ = ("DEFAULT_TERMINATION_LOG", "TERMINATION_LOG_ENV", "write_termination_message")

DEFAULT_TERMINATION_LOG = Path(TERMINATION_LOG)
MAX_BYTES = TERMINATION_MESSAGE_MAX_BYTES


def write_termination_message(message: str) -> Path | None:
    """Write ``message`` (one line, at most 4096 bytes) to the termination-message file.

    The path is ``$KAITO_TERMINATION_LOG`` if set, else ``/dev/termination-log`` when it exists
    (Kubernetes creates it; outside a pod nothing is written). Returns the path written, or
    ``None``. Never raises: failing to record a failure must not hide the failure itself.
    """
    configured = os.environ.get(TERMINATION_LOG_ENV)
    path = Path(configured) if configured else DEFAULT_TERMINATION_LOG
    if not configured and not path.exists():
        return None
    line = " ".join(message.split())
    data = line.encode("utf-8")[:MAX_BYTES].decode("utf-8", errors="ignore")
    try:
        path.write_text(data, encoding="utf-8")
    except OSError:
        return None
    return path
