"""examples/local: the guide's Workspaces for one machine, and how they differ from the guide's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kaito.api import ValidationContext, check_workspace
from tests.api.seeds import SEEDS, seed_documents, with_placeholders_filled

LOCAL = Path(__file__).resolve().parents[2] / "examples" / "local"


def _local(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((LOCAL / name).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    "name", ["kaito_workspace_tuning_phi_3.yaml", "kaito_workspace_phi_3_with_adapter.yaml"]
)
def test_local_examples_are_admitted_where_loopback_urls_are_allowed(name: str) -> None:
    doc = _local(name)
    assert check_workspace(doc, ValidationContext(allow_local_urls=True)).errors == ()


def test_a_manager_that_does_not_allow_local_urls_refuses_the_local_data_url() -> None:
    errors = check_workspace(_local("kaito_workspace_tuning_phi_3.yaml"), ValidationContext())
    assert [e.field for e in errors.errors] == ["tuning.input.urls[0]"]


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside the repo")
def test_the_local_tuning_workspace_is_the_guides_but_for_the_data_url_and_registry() -> None:
    local = _local("kaito_workspace_tuning_phi_3.yaml")
    seeds = [yaml.safe_load(with_placeholders_filled(t)) for _, t in seed_documents()]
    tuning = [s for s in seeds if "tuning" in s and s["metadata"] == local["metadata"]]
    assert tuning, "no tuning Workspace of the guide is named like the local one"
    guide = tuning[0]
    assert local["resource"] == guide["resource"]
    assert local["tuning"]["preset"] == guide["tuning"]["preset"]
    assert local["tuning"]["method"] == guide["tuning"]["method"]
    assert local["tuning"]["input"]["urls"][0].startswith("http://localhost:5001/datasets/")
    assert local["tuning"]["output"]["image"].startswith("localhost:5000/")
