"""AdmissionReview handling for Workspaces: validate (admission rules) and mutate (defaults).

Webhook layer (pure functions over ``admission.k8s.io/v1`` JSON). The cluster objects validation
needs (ConfigMaps, nodes) are fetched by the caller and handed in with the ``ValidationContext``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

from kaito.api import ValidationContext, check_workspace, default_workspace
from kaito.apimachinery import invalid_message

__all__ = ("defaults_patch", "mutate_review", "review_response", "validate_review")

ADMISSION_API: Final = "admission.k8s.io/v1"
_MAX_WARNING: Final = 240


def review_response(uid: str, allowed: bool, **extra: Any) -> dict[str, Any]:
    """An ``AdmissionReview`` answer for request ``uid``."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": allowed, **extra},
    }


def _request(review: Mapping[str, Any]) -> Mapping[str, Any]:
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
        raise ValueError("not an admission.k8s.io/v1 AdmissionReview: request.uid is missing")
    return request


def validate_review(review: Mapping[str, Any], ctx: ValidationContext) -> dict[str, Any]:
    """Answer a validating review: allowed, or denied with every problem (422 Invalid)."""
    request = _request(review)
    uid = request["uid"]
    operation = request.get("operation")
    obj = request.get("object")
    if operation not in ("CREATE", "UPDATE") or not isinstance(obj, Mapping):
        return review_response(uid, True)
    obj = dict(obj)
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and not meta.get("namespace"):
        obj["metadata"] = meta = {**meta, "namespace": request.get("namespace") or "default"}
    old = request.get("oldObject") if operation == "UPDATE" else None
    if old is not None and isinstance(meta, Mapping) and meta.get("deletionTimestamp"):
        return review_response(uid, True)  # finalizer removal while deleting: always allowed
    result = check_workspace(obj, ctx, old=old if isinstance(old, Mapping) else None)
    warnings = [str(w)[:_MAX_WARNING] for w in result.warnings]
    if result.ok:
        return review_response(uid, True, **({"warnings": warnings} if warnings else {}))
    # What the API server reports: the problems of the first stage that refuses the object (the
    # server never asks this webhook about an object its schema refused).
    errors = result.refusal
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    status = {
        "code": 422,
        "reason": "Invalid",
        "message": invalid_message("Workspace.kaito.sh", name, errors),
        "details": {
            "name": name,
            "group": "kaito.sh",
            "kind": "Workspace",
            "causes": [e.cause() for e in errors],
        },
    }
    extra: dict[str, Any] = {"status": status}
    if warnings:
        extra["warnings"] = warnings
    return review_response(uid, False, **extra)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _diff(before: Any, after: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key, value in after.items():
            child = f"{path}/{_escape(key)}"
            if key not in before:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                _diff(before[key], value, child, ops)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            _diff(b, a, f"{path}/{i}", ops)
    elif before != after:
        ops.append({"op": "replace", "path": path, "value": after})


def defaults_patch(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch that applies the structural defaults of the object's version."""
    ops: list[dict[str, Any]] = []
    _diff(obj, default_workspace(obj), "", ops)
    return ops


def mutate_review(review: Mapping[str, Any]) -> dict[str, Any]:
    """Answer a mutating review with the defaults as a base64 JSON patch (none when nothing)."""
    request = _request(review)
    uid = request["uid"]
    obj = request.get("object")
    if request.get("operation") not in ("CREATE", "UPDATE") or not isinstance(obj, Mapping):
        return review_response(uid, True)
    ops = defaults_patch(obj)
    if not ops:
        return review_response(uid, True)
    patch = base64.b64encode(json.dumps(ops).encode()).decode()
    return review_response(uid, True, patchType="JSONPatch", patch=patch)
