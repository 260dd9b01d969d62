"""Update rules: immutable fields, toggles, adapters validated again."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.api import ValidationContext, check_workspace
from tests.api.test_invalid_specs import DELETE, inference_ws, tuning_ws

CASES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("toggle-to-tuning", inference_ws(), tuning_ws(metadata={"name": "ws"}), "inference"),
    ("preset-changed", inference_ws(), inference_ws(inference={"preset": {"name": "phi-4"}}),
     "inference.preset"),
    ("count-changed", inference_ws(resource={"count": 1}), inference_ws(resource={"count": 2}),
     "resource.count"),
    ("instance-type-changed", inference_ws(),
     inference_ws(resource={"instanceType": "Standard_NC96ads_A100_v4"}), "resource.instanceType"),
    ("selector-changed", inference_ws(),
     inference_ws(resource={"labelSelector": {"matchLabels": {"apps": "other"}}}),
     "resource.labelSelector"),
    ("template-set", inference_ws(inference={"preset": DELETE, "template": {"spec": {}}}),
     inference_ws(), "inference.template"),
    ("tuning-method-changed", tuning_ws(), tuning_ws(tuning={"method": "lora"}), "tuning.method"),
    ("tuning-preset-changed", tuning_ws(),
     tuning_ws(tuning={"preset": {"name": "phi-3-mini-4k-instruct"}}), "tuning.preset"),
    ("tuning-input-name-changed", tuning_ws(tuning={"input": {"name": "a"}}),
     tuning_ws(tuning={"input": {"name": "b"}}), "tuning.input.name"),
    ("adapter-becomes-invalid", inference_ws(),
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"},
                                           "strength": "2"}]}),
     "inference.adapters[0].strength"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_update_is_rejected(old: dict[str, Any], new: dict[str, Any], field: str) -> None:
    result = check_workspace(new, ValidationContext(), old=old)
    assert field in [e.field for e in result.errors], [str(e) for e in result.errors]


def test_adapters_may_change() -> None:
    old = inference_ws()
    new = inference_ws(
        inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"}, "strength": "0.3"}]}
    )
    assert check_workspace(new, ValidationContext(), old=old).ok


def test_labels_and_annotations_may_change() -> None:
    old = inference_ws()
    new = inference_ws(metadata={"labels": {"team": "ml"}, "annotations": {"note": "x"}})
    assert check_workspace(new, ValidationContext(), old=old).ok


def test_removing_count_is_allowed() -> None:
    old = inference_ws(resource={"count": 1})
    new = inference_ws(resource={"count": DELETE})
    assert check_workspace(new, ValidationContext(), old=old).ok
