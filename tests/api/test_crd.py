"""The generated CRD: committed file in sync, structural, and it accepts/rejects what it should."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kaito.api import printer_columns, render_crds, workspace_crd
from tests.api.test_examples import EXAMPLES
from tests.api.test_invalid_specs import CASES

CRD_PATH = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "kaito.sh_workspaces.yaml"

# Invalid specs the schema itself can reject (the rest need the admission rules).
SCHEMA_REJECTS = {
    "strength-out-of-range",
    "strength-not-a-number",
    "strength-negative",
    "strength-wrong-type",
    "too-many-adapters",
    "selector-missing",
    "count-zero",
    "count-string",
    "unknown-field",
    "unknown-root-field",
    "tuning-unknown-method",
    "tuning-input-missing",
}


def _strict(schema: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """The schema with unknown fields forbidden, as fieldValidation=Strict applies it."""
    out = copy.deepcopy(schema)
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
        out["properties"] = {
            k: v if (root and k == "metadata") else _strict(v, root=False)
            for k, v in out["properties"].items()
        }
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"], root=False)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"], root=False)
    return out


def _validator(version: str) -> jsonschema.Draft7Validator:
    crd = workspace_crd()
    (spec,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft7Validator(_strict(spec["schema"]["openAPIV3Schema"]))


def test_committed_crd_matches_the_generator() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == render_crds(), (
        "deploy/crds is stale: run `kaito crds --output-dir deploy/crds`"
    )


def test_crd_shape_matches_upstream() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "workspaces.kaito.sh"
    assert spec["names"]["shortNames"] == ["wk", "wks"]
    assert spec["names"]["categories"] == ["workspace"]
    assert spec["scope"] == "Namespaced"
    assert [(v["name"], v["served"], v["storage"]) for v in spec["versions"]] == [
        ("v1alpha1", True, False),
        ("v1beta1", True, True),
    ]
    assert all(v["subresources"] == {"status": {}} for v in spec["versions"])


def test_default_columns_show_the_guide_and_upstream() -> None:
    def shown(version: str) -> list[str]:
        return [c["name"] for c in printer_columns(version) if not c.get("priority")]

    assert shown("v1alpha1") == [
        "Instance", "ResourceReady", "InferenceReady", "WorkspaceReady", "Age",
    ]  # fmt: skip
    assert shown("v1beta1") == [
        "Instance", "ResourceReady", "InferenceReady", "JobStarted", "WorkspaceSucceeded",
        "WorkspaceReady", "State", "Age",
    ]  # fmt: skip


def _structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path or '<root>'} has no type")
    for key, sub in schema.get("properties", {}).items():
        problems += _structural_problems(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        problems += _structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += _structural_problems(schema["additionalProperties"], f"{path}{{}}")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties are exclusive")
    return problems


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_schema_is_structural(version: str) -> None:
    (spec,) = [v for v in workspace_crd()["spec"]["versions"] if v["name"] == version]
    assert _structural_problems(spec["schema"]["openAPIV3Schema"]) == []


@pytest.mark.parametrize(("name", "doc"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_schema_accepts_every_example(name: str, doc: dict[str, Any]) -> None:
    version = doc["apiVersion"].split("/")[1]
    errors = list(_validator(version).iter_errors(doc))
    assert errors == []


SCHEMA_CASES = [c for c in CASES if c[0] in SCHEMA_REJECTS]


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_rejects_invalid_specs(case: tuple[Any, ...]) -> None:
    doc = case[1]
    version = doc["apiVersion"].split("/")[1]
    assert list(_validator(version).iter_errors(doc)), f"{case[0]} passed the schema"


def test_schema_rejection_table_is_covered() -> None:
    known = {c[0] for c in CASES}
    assert len(SCHEMA_CASES) >= 10
    assert known >= SCHEMA_REJECTS
