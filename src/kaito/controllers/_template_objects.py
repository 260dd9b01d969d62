"""The StatefulSet of an ``inference.template`` Workspace: the user's pod, placed by KAITO.

Controller layer (a pure function returning JSON). Upstream's ``GenerateManifestWithPodTemplate``
field by field: the user's pod template as given, with the ``kaito.sh/workspace`` label added,
its node affinity replaced by the selector's labels (and the provisioned nodes' Workspace labels),
KAITO's GPU tolerations appended to the user's, one pod per node. Readiness is the user's own
probes': KAITO adds none. The Services are the preset path's (pod 0 behind port 80).
"""

from __future__ import annotations

import copy
from typing import Any

from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.controllers._inference_objects import pod_affinity_requirements
from kaito.controllers._naming import controller_owner_reference, workspace_labels
from kaito.controllers._owned import INFERENCE_SET
from kaito.controllers._pod_parts import inference_tolerations, node_affinity, workspace_selector
from kaito.controllers._settings import ControllerSettings

__all__ = ("template_statefulset",)


def template_statefulset(
    ws: Workspace, *, replicas: int, revision: str, settings: ControllerSettings
) -> dict[str, Any]:
    """The StatefulSet running the Workspace's ``inference.template`` on ``replicas`` nodes."""
    assert ws.inference is not None
    assert ws.inference.template is not None
    name = ws.metadata.name or ""
    selector = workspace_selector(ws)
    template: dict[str, Any] = copy.deepcopy(dict(ws.inference.template))
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **selector}
    pod = template.setdefault("spec", {})
    affinity = node_affinity(pod_affinity_requirements(ws, settings))
    if affinity is None:
        pod.pop("affinity", None)
    else:
        pod["affinity"] = affinity
    pod["tolerations"] = [*(pod.get("tolerations") or []), *inference_tolerations(settings.cloud)]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": INFERENCE_SET.name(name),
            "namespace": ws.metadata.namespace,
            "labels": workspace_labels(ws),
            "annotations": {c.ANNOTATION_REVISION: revision},
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }
