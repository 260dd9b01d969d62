"""AdmissionReview handling for Workspaces: validate (admission rules) and mutate (defaults).

Webhook layer (pure functions over ``admission.k8s.io/v1`` JSON). A review's Workspace is decoded
once into the storage version's type (:func:`decode_review`); the caller fetches the cluster
objects that typed Workspace refers to (ConfigMaps, nodes) and hands them in with the
``ValidationContext`` (:func:`answer_review`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from kaito.api import (
    Checked,
    ValidationContext,
    check_decoded,
    decode_workspace,
    default_workspace,
)
from kaito.apimachinery import invalid_message

__all__ = (
    "WorkspaceReview",
    "answer_review",
    "decode_review",
    "defaults_patch",
    "mutate_review",
    "review_response",
    "validate_review",
)

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


@attrs.frozen
class WorkspaceReview:
    """A validating review's request with its Workspaces decoded once (storage version).

    ``decoded`` is None when there is nothing to validate (not a CREATE or UPDATE, or the finalizer
    being removed from a Workspace under deletion); ``old`` is the stored object of an UPDATE.
    """

    uid: str
    name: str
    decoded: Checked | None
    old: Checked | None = None


def decode_review(review: Mapping[str, Any]) -> WorkspaceReview:
    """Read a validating review and decode its object (and old object) once each.

    Raises:
        ValueError: the body is not an ``admission.k8s.io/v1`` AdmissionReview.
    """
    request = _request(review)
    uid = request["uid"]
    operation = request.get("operation")
    obj = request.get("object")
    if operation not in ("CREATE", "UPDATE") or not isinstance(obj, Mapping):
        return WorkspaceReview(uid, "", None)
    obj = dict(obj)
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and not meta.get("namespace"):
        obj["metadata"] = meta = {**meta, "namespace": request.get("namespace") or "default"}
    # Metadata that is not a mapping is refused by decoding (as the API server does), not here.
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    old = request.get("oldObject") if operation == "UPDATE" else None
    if old is not None and isinstance(meta, Mapping) and meta.get("deletionTimestamp"):
        return WorkspaceReview(uid, name, None)  # finalizer removal while deleting: allowed
    decoded_old = decode_workspace(old) if isinstance(old, Mapping) else None
    return WorkspaceReview(uid, name, decode_workspace(obj), decoded_old)


def answer_review(review: WorkspaceReview, ctx: ValidationContext) -> dict[str, Any]:
    """Answer a decoded review: allowed, or denied with every problem (422 Invalid)."""
    if review.decoded is None:
        return review_response(review.uid, True)
    result = check_decoded(review.decoded, ctx, old=review.old)
    warnings = [str(w)[:_MAX_WARNING] for w in result.warnings]
    if result.ok:
        return review_response(review.uid, True, **({"warnings": warnings} if warnings else {}))
    # What the API server reports: the problems of the first stage that refuses the object (the
    # server never asks this webhook about an object its schema refused).
    errors = result.refusal
    status = {
        "code": 422,
        "reason": "Invalid",
        "message": invalid_message("Workspace.kaito.sh", review.name, errors),
        "details": {
            "name": review.name,
            "group": "kaito.sh",
            "kind": "Workspace",
            "causes": [e.cause() for e in errors],
        },
    }
    extra: dict[str, Any] = {"status": status}
    if warnings:
        extra["warnings"] = warnings
    return review_response(review.uid, False, **extra)


def validate_review(review: Mapping[str, Any], ctx: ValidationContext) -> dict[str, Any]:
    """Answer a validating review: allowed, or denied with every problem (422 Invalid)."""
    return answer_review(decode_review(review), ctx)


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
