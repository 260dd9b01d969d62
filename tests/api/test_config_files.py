"""Parameter ConfigMaps are the user's text: read with the API server's bounded decoder, so an alias
bomb or a deep document in one is a field error, not gigabytes in the manager or the webhook."""

from __future__ import annotations

import copy
import tracemalloc
from typing import Any

import pytest

from kaito.api import ConfigFileError, ValidationContext, check_workspace, load_config_file
from kaito.api.constants import INFERENCE_CONFIG_KEY
from tests.api.seeds import example_documents
from tests.support.hostile import alias_bomb

BOMB = alias_bomb()  # 10**9 leaves once expanded, under 1 KB as written
DEEP = "vllm: " + "[" * 300 + "]" * 300 + "\n"


def _phi3_with_config(name: str) -> dict[str, Any]:
    (doc,) = [d for n, d in example_documents() if n.endswith("kaito_workspace_phi_3.yaml")]
    doc = copy.deepcopy(doc)
    doc["inference"]["config"] = name
    return doc


def test_a_config_file_reads_as_the_cluster_reads_yaml() -> None:
    assert load_config_file("vllm:\n  max-model-len: 4096\n  date: 2024-01-01\n") == {
        "vllm": {"max-model-len": 4096, "date": "2024-01-01"}
    }
    assert load_config_file("") is None


@pytest.mark.parametrize(
    ("text", "says"), [(BOMB, "excessive aliasing"), (DEEP, "exceed")], ids=["bomb", "deep"]
)
def test_hostile_config_files_are_refused_without_expanding(text: str, says: str) -> None:
    assert len(text) < 1024
    tracemalloc.start()
    try:
        with pytest.raises(ConfigFileError) as refused:
            load_config_file(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert says in str(refused.value).lower()
    assert peak < 16 * 1024 * 1024, peak


@pytest.mark.parametrize("text", [BOMB, DEEP], ids=["bomb", "deep"])
def test_a_workspace_whose_config_map_holds_hostile_yaml_gets_a_field_error(text: str) -> None:
    ctx = ValidationContext(config_maps={("default", "hostile"): {INFERENCE_CONFIG_KEY: text}})
    result = check_workspace(_phi3_with_config("hostile"), ctx)
    assert [e.field for e in result.errors] == ["inference.config"], [str(e) for e in result.errors]
    assert "hostile" in str(result.errors[0])
