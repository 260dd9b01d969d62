"""The converter: camelCase on the wire, strict by default, lenient with warnings, exact types."""

from __future__ import annotations

import pytest

from kaito.api import (
    Condition,
    LabelSelector,
    ObjectMeta,
    structure,
    structure_lenient,
    unstructure,
    v1beta1,
)
from kaito.apimachinery import ErrorType, InvalidSpecError


def test_snake_case_in_python_camel_case_on_the_wire() -> None:
    ws = v1beta1.Workspace(
        metadata=ObjectMeta(name="w", namespace="ns"),
        resource=v1beta1.ResourceSpec(
            instance_type="Standard_NC24ads_A100_v4",
            label_selector=LabelSelector(match_labels={"a": "b"}),
            preferred_nodes=("n1",),
        ),
        status=v1beta1.WorkspaceStatus(
            target_node_count=1,
            conditions=(
                Condition(
                    type="ResourceReady",
                    status="True",
                    reason="workspaceResourceStatusSuccess",
                    message="",
                    last_transition_time="2026-11-25T10:00:00Z",
                    observed_generation=1,
                ),
            ),
        ),
    )
    wire = unstructure(ws)
    assert wire["resource"] == {
        "instanceType": "Standard_NC24ads_A100_v4",
        "labelSelector": {"matchLabels": {"a": "b"}},
        "preferredNodes": ["n1"],
    }
    assert wire["status"]["targetNodeCount"] == 1
    assert wire["status"]["conditions"][0]["lastTransitionTime"] == "2026-11-25T10:00:00Z"
    assert "inference" not in wire  # None is omitted, like Go's omitempty
    assert structure(wire, v1beta1.Workspace) == ws


def test_strict_mode_reports_every_unknown_field_with_its_path() -> None:
    doc = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "w", "lables": {}},
        "resource": {"labelSelector": {"matchLabel": {}}},
        "inference": {"preset": {"name": "phi-4", "acessMode": "public"}},
    }
    with pytest.raises(InvalidSpecError) as err:
        structure(doc, v1beta1.Workspace)
    fields = sorted(e.field for e in err.value.errors)
    assert fields == [
        "inference.preset.acessMode",
        "metadata.lables",
        "resource.labelSelector.matchLabel",
    ]
    assert all(e.type is ErrorType.UNKNOWN_FIELD for e in err.value.errors)
    assert err.value.errors[0].cause()["reason"] == "FieldValueUnknown"
    assert 'did you mean "accessMode"' in str(err.value)
    assert str(err.value).startswith('Workspace "w" is invalid: [')


def test_lenient_mode_drops_unknown_fields_and_says_so() -> None:
    doc = {
        "metadata": {"name": "w"},
        "resource": {"futureField": 1, "labelSelector": {}},
        "tuning2": {},
    }
    ws, warnings = structure_lenient(doc, v1beta1.Workspace)
    assert ws.resource == v1beta1.ResourceSpec(label_selector=LabelSelector())
    assert sorted(w.field for w in warnings) == ["resource.futureField", "tuning2"]
    assert all(w.warning for w in warnings)


def test_lenient_mode_still_rejects_wrong_types() -> None:
    with pytest.raises(InvalidSpecError) as err:
        structure_lenient({"resource": {"count": "one", "labelSelector": {}}}, v1beta1.Workspace)
    assert [e.field for e in err.value.errors] == ["resource.count"]


def test_the_schema_decides_what_is_required() -> None:
    """``labelSelector`` has a Python default but the CRD requires it: the schema wins."""
    with pytest.raises(InvalidSpecError) as err:
        structure({"resource": {}}, v1beta1.Workspace)
    assert [str(e) for e in err.value.errors] == ["resource.labelSelector: Required value"]


@pytest.mark.parametrize(
    ("doc", "field", "expected"),
    [
        ({"resource": {"count": True}}, "resource.count", 'must be of type integer: "boolean"'),
        ({"resource": {"count": 1.5}}, "resource.count", 'must be of type integer: "number"'),
        (
            {"resource": {"preferredNodes": "n1"}},
            "resource.preferredNodes",
            'must be of type array: "string"',
        ),
        (
            {"resource": {"labelSelector": []}},
            "resource.labelSelector",
            'must be of type object: "array"',
        ),
        (
            {"metadata": {"labels": {"a": 1}}},
            "metadata",
            "cannot unmarshal number into Go struct field ObjectMeta.labels of type string",
        ),
        (
            {"inference": {"adapters": [{"source": {"urls": ["a", 2]}}]}},
            "inference.adapters[0].source.urls[1]",
            'must be of type string: "integer"',
        ),
        ({"tuning": {"method": "lora"}}, "tuning.input", "Required value"),
        (
            {"inference": {"template": "not an object"}},
            "inference.template",
            'must be of type object: "string"',
        ),
    ],
)
def test_wrong_types_are_never_coerced(doc: dict, field: str, expected: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        structure(doc, v1beta1.Workspace)
    match = [e for e in err.value.errors if e.field == field]
    assert match, [str(e) for e in err.value.errors]
    assert expected in str(match[0])


def test_json_integers_written_as_floats_are_integers() -> None:
    """``1.0`` is an integer to kube-apiserver (and Go stores it as ``1``)."""
    ws = structure({"resource": {"count": 2.0, "labelSelector": {}}}, v1beta1.Workspace)
    assert ws.resource is not None and ws.resource.count == 2


def test_schemaless_fields_are_kept_verbatim() -> None:
    template = {"spec": {"containers": [{"name": "c", "image": "x", "unknownKey": {"a": [1]}}]}}
    doc = {"inference": {"template": template}, "metadata": {"name": "w"}}
    ws = structure(doc, v1beta1.Workspace)
    assert unstructure(ws)["inference"]["template"] == template
