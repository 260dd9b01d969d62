"""Pods for streaming tests: shell scripts in the busybox image (the host's shell and tools)."""

from __future__ import annotations

from typing import Any

from kaito.cluster._json import Obj


def sh(name: str, script: str, **fields: Any) -> Obj:
    """A container running ``sh -c script`` with a ``/state`` emptyDir to talk through."""
    return {
        "name": name,
        "image": "busybox",
        "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "state", "mountPath": "/state"}],
        **fields,
    }


def pod(name: str, *containers: Obj, **spec: Any) -> Obj:
    """A Pod with a ``state`` emptyDir shared by its containers."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": list(containers),
            "volumes": [{"name": "state", "emptyDir": {}}],
            "terminationGracePeriodSeconds": 1,
            **spec,
        },
    }
