"""The guide's Workspaces parse, validate, round-trip byte for byte, and convert across versions."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kaito.api import (
    ValidationContext,
    check_workspace,
    convert_workspace,
    structure,
    unstructure,
    v1alpha1,
    v1beta1,
    workspace_type,
)
from tests.api.seeds import (
    SEEDS,
    example_documents,
    seed_documents,
    with_placeholders_filled,
)

pytestmark = pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside the repo")

SEEDS_LIST = seed_documents() if SEEDS.is_dir() else []
EXAMPLES = example_documents()


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def test_the_guide_has_its_five_workspaces() -> None:
    kinds = sorted(
        ("inference" if "inference" in yaml.safe_load(t) else "tuning") for _, t in SEEDS_LIST
    )
    assert kinds == ["inference", "inference", "tuning", "tuning", "tuning"]


@pytest.mark.parametrize(("ident", "text"), SEEDS_LIST, ids=[i for i, _ in SEEDS_LIST])
def test_seed_round_trips_byte_stable(ident: str, text: str) -> None:
    doc = yaml.safe_load(text)
    ws = structure(doc, v1alpha1.Workspace)
    assert _dump(unstructure(ws)) == _dump(doc)


@pytest.mark.parametrize(("ident", "text"), SEEDS_LIST, ids=[i for i, _ in SEEDS_LIST])
def test_seed_validates_once_placeholders_are_filled(ident: str, text: str) -> None:
    result = check_workspace(yaml.safe_load(with_placeholders_filled(text)), ValidationContext())
    assert result.errors == ()
    assert result.workspace is not None


@pytest.mark.parametrize(("ident", "text"), SEEDS_LIST, ids=[i for i, _ in SEEDS_LIST])
def test_seed_placeholders_are_reported_by_field(ident: str, text: str) -> None:
    result = check_workspace(yaml.safe_load(text), ValidationContext())
    fields = sorted(e.field for e in result.errors)
    expected = []
    if "IMAGE_NAME_HERE" in text:
        expected += ["tuning.output.image", "tuning.output.imagePushSecret"]
    if "ADAPTER_HERE" in text:
        expected += ["inference.adapters[0].source.image"]
    assert fields == sorted(expected)
    for error in result.errors:
        assert "lowercase" in str(error)


@pytest.mark.parametrize(("name", "doc"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_is_valid_and_byte_stable(name: str, doc: dict[str, Any]) -> None:
    cls = workspace_type(doc["apiVersion"])
    assert cls is not None
    assert _dump(unstructure(structure(doc, cls))) == _dump(doc)
    result = check_workspace(doc, ValidationContext(config_maps={}))
    assert result.errors == (), [str(e) for e in result.errors]


@pytest.mark.parametrize(("name", "doc"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_round_trips_across_versions(name: str, doc: dict[str, Any]) -> None:
    beta, dropped = convert_workspace(doc, "v1beta1")
    assert dropped == []
    assert beta["apiVersion"] == "kaito.sh/v1beta1"
    typed = structure(beta, v1beta1.Workspace)
    alpha, dropped_back = convert_workspace(unstructure(typed), "v1alpha1")
    assert dropped_back == []
    assert _dump(alpha) == _dump(doc)


def test_examples_are_the_guide_with_placeholders_filled() -> None:
    seeds = [yaml.safe_load(with_placeholders_filled(t)) for _, t in SEEDS_LIST]
    for name, doc in EXAMPLES:
        assert doc in seeds, f"{name} is not one of the guide's Workspaces"


def test_beta_only_fields_are_dropped_going_to_alpha_and_reported() -> None:
    doc = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "w"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"a": "b"}},
            "partition": {"mode": "mig", "profile": "1g.10gb"},
        },
        "inference": {"preset": {"name": "phi-4"}},
        "status": {"state": "Ready", "targetNodeCount": 1, "workerNodes": ["n1"]},
    }
    alpha, dropped = convert_workspace(doc, "v1alpha1")
    assert sorted(dropped) == ["resource.partition", "status.state", "status.targetNodeCount"]
    assert alpha["status"] == {"workerNodes": ["n1"]}
    structure(alpha, v1alpha1.Workspace)
