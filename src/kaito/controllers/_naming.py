"""Names, labels, owner references and revision hashes of the objects a Workspace owns.

Controller layer (pure functions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kaito.api import constants as c
from kaito.api import unstructure
from kaito.api.v1beta1 import Workspace
from kaito.controllers._owned import HEADLESS_SERVICE, INFERENCE_PARAMS, TRAINING_PARAMS

__all__ = (
    "controller_owner_reference",
    "headless_service_name",
    "inference_config_name",
    "revision_hash",
    "revision_inputs",
    "revision_of",
    "training_config_name",
    "workspace_labels",
)


def _meta(ws: Workspace) -> tuple[str, str]:
    return ws.metadata.name or "", ws.metadata.namespace or "default"


def workspace_labels(ws: Workspace) -> dict[str, str]:
    """The labels every object of a Workspace carries (and its pods' selector)."""
    name, namespace = _meta(ws)
    return {c.LABEL_WORKSPACE: name, c.LABEL_WORKSPACE_NAMESPACE: namespace}


def controller_owner_reference(ws: Workspace) -> dict[str, Any]:
    """The ownerReference that makes the Workspace the managing controller (GC follows it)."""
    return {
        "apiVersion": ws.api_version,
        "kind": c.KIND,
        "name": ws.metadata.name,
        "uid": ws.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def headless_service_name(ws: Workspace) -> str:
    return HEADLESS_SERVICE.name(ws.metadata.name or "")


def inference_config_name(ws: Workspace) -> str:
    return INFERENCE_PARAMS.name(ws.metadata.name or "")


def training_config_name(ws: Workspace) -> str:
    return TRAINING_PARAMS.name(ws.metadata.name or "")


def revision_inputs(ws: Workspace) -> dict[str, Any]:
    """What of the Workspace the workload is rendered from: the spec sections (as JSON) and
    KAITO's annotations; status and other metadata do not take part."""
    wire = unstructure(ws)
    relevant = {k: wire.get(k) for k in ("resource", "inference", "tuning")}
    relevant["annotations"] = {
        k: v for k, v in (ws.metadata.annotations or {}).items() if k.startswith("kaito.sh/")
    }
    return relevant


def revision_of(inputs: Mapping[str, Any], *extra: Any) -> str:
    """A short hash of :func:`revision_inputs` and the ``extra`` inputs."""
    payload = json.dumps([inputs, *extra], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def revision_hash(ws: Workspace, *extra: Any) -> str:
    """A short hash of what the workload is rendered from (spec sections and ``extra`` inputs).

    It changes when the spec (or a referenced ConfigMap's data passed in ``extra``) changes, so
    the workload rolls; status and metadata do not take part.
    """
    return revision_of(revision_inputs(ws), *extra)
