"""AdmissionReview answers: denials carry every problem; defaults come as a JSON patch."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from kaito.api import ValidationContext
from kaito.webhooks import mutate_review, validate_review
from tests.api.test_invalid_specs import DELETE, inference_ws


def review(obj: dict[str, Any], operation: str = "CREATE", old: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "operation": operation,
            "namespace": "default",
            "object": obj,
            "oldObject": old,
        },
    }


def test_valid_workspace_is_allowed() -> None:
    answer = validate_review(review(inference_ws()), ValidationContext())
    assert answer["response"] == {"uid": "u-1", "allowed": True}


def test_invalid_workspace_is_denied_with_every_problem() -> None:
    doc = inference_ws(
        resource={"instanceType": "m5.large"},
        inference={"preset": {"name": "phi-5"}},
    )
    response = validate_review(review(doc), ValidationContext())["response"]
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert status["message"].startswith('Workspace.kaito.sh "ws" is invalid: [')
    causes = status["details"]["causes"]
    assert sorted(c["field"] for c in causes) == ["inference.preset.name", "resource.instanceType"]
    assert {c["reason"] for c in causes} == {"FieldValueInvalid", "FieldValueNotSupported"}


def test_a_schema_invalid_workspace_is_denied_as_the_api_server_refuses_it() -> None:
    """The server never sends such an object; asked anyway, the webhook says what it would."""
    doc = inference_ws(
        resource={"instanceType": "m5.large"},
        inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"}, "strength": "1.5"}]},
    )
    status = validate_review(review(doc), ValidationContext())["response"]["status"]
    assert [c["field"] for c in status["details"]["causes"]] == ["inference.adapters[0].strength"]
    for metadata in ("not-a-mapping", ["x"]):
        denied = validate_review(review({**doc, "metadata": metadata}), ValidationContext())
        assert denied["response"]["allowed"] is False
        assert denied["response"]["status"]["details"]["causes"][0]["field"] == "metadata"


def test_updates_check_immutability() -> None:
    old = inference_ws()
    new = inference_ws(inference={"preset": {"name": "phi-4"}})
    response = validate_review(review(new, "UPDATE", old), ValidationContext())["response"]
    assert response["allowed"] is False
    assert "inference.preset: Forbidden: field is immutable" in response["status"]["message"]


def test_deletes_are_allowed() -> None:
    answer = validate_review(review(inference_ws(), "DELETE"), ValidationContext())
    assert answer["response"]["allowed"] is True


def test_warnings_are_passed_on() -> None:
    doc = inference_ws(resource={"instanceType": "Standard_NC999_future"})
    response = validate_review(review(doc), ValidationContext())["response"]
    assert response["allowed"] is True
    assert len(response["warnings"]) == 1
    assert "not in the GPU catalog" in response["warnings"][0]


def _apply(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for op in ops:
        *parents, leaf = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        target = out
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[leaf] = op["value"]
    return out


def test_mutation_applies_the_version_defaults() -> None:
    doc = inference_ws(resource={"instanceType": DELETE})
    response = mutate_review(review(doc))["response"]
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert {"op": "add", "path": "/resource/count", "value": 1} in ops
    assert {
        "op": "add",
        "path": "/resource/instanceType",
        "value": "Standard_NC24ads_A100_v4",
    } in ops
    patched = _apply(doc, ops)
    assert patched["inference"]["preset"]["accessMode"] == "public"


def test_nothing_to_default_means_no_patch() -> None:
    doc = inference_ws(resource={"count": 1}, inference={"preset": {"accessMode": "public"}})
    assert "patch" not in mutate_review(review(doc))["response"]


def test_malformed_review_is_refused() -> None:
    with pytest.raises(ValueError, match=r"request\.uid"):
        validate_review({"request": {}}, ValidationContext())
