"""Hypothesis: any valid Workspace round-trips through cattrs and across versions unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kaito.api import (
    ValidationContext,
    check_workspace,
    convert_workspace,
    structure,
    unstructure,
    v1alpha1,
    v1beta1,
)
from kaito.catalog import preset_catalog

DNS = st.from_regex(r"\A[a-z]([a-z0-9-]{0,20}[a-z0-9])?\Z")
LABEL_VALUE = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9_.-]{0,10}[A-Za-z0-9])?\Z")
STRENGTH = st.one_of(
    st.sampled_from(["0", "1", "1.0", "0.5", ".25", "0.125"]),
    st.decimals(min_value=0, max_value=1, places=3).map(str),
)
IMAGE = st.builds(
    lambda host, repo, tag: f"{host}.azurecr.io/{repo}:{tag}",
    DNS,
    DNS,
    st.from_regex(r"\A[0-9]\.[0-9]\.[0-9]\Z"),
)
SMALL_PRESETS = [
    p.name
    for p in preset_catalog()
    if not p.deprecated
    and not p.download_auth_required
    and p.total_gpu_memory <= 40
    and p.vllm_lora
]
TUNABLE = [p.name for p in preset_catalog() if p.tuning and not p.deprecated]


def _adapter(name: str, image: str, strength: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"source": {"name": name, "image": image}}
    if strength is not None:
        out["strength"] = strength
    return out


adapters = st.lists(
    st.tuples(DNS, IMAGE, st.none() | STRENGTH), max_size=4, unique_by=lambda t: t[0]
).map(lambda items: [_adapter(*t) for t in items])

inference = st.builds(
    lambda preset, ads: {"preset": {"name": preset}, **({"adapters": ads} if ads else {})},
    st.sampled_from(SMALL_PRESETS),
    adapters,
)
tuning = st.builds(
    lambda preset, method, url, image: {
        "preset": {"name": preset},
        "method": method,
        "input": {"urls": [url]},
        "output": {"image": image, "imagePushSecret": "push-secret"},
    },
    st.sampled_from(TUNABLE),
    st.sampled_from(["lora", "qlora"]),
    DNS.map(lambda p: f"https://data.example.com/{p}.parquet"),
    IMAGE,
)


@st.composite
def workspaces(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from(["v1alpha1", "v1beta1"]))
    labels = draw(st.dictionaries(DNS, LABEL_VALUE, min_size=1, max_size=3))
    doc: dict[str, Any] = {
        "apiVersion": f"kaito.sh/{version}",
        "kind": "Workspace",
        "metadata": {"name": draw(DNS), "namespace": draw(DNS)},
        "resource": {
            "instanceType": draw(
                st.sampled_from(["Standard_NC24ads_A100_v4", "Standard_NC96ads_A100_v4"])
            ),
            "labelSelector": {"matchLabels": labels},
        },
    }
    if draw(st.booleans()):
        doc["resource"]["count"] = 1
    if draw(st.booleans()):
        doc["inference"] = draw(inference)
    else:
        doc["tuning"] = draw(tuning)
    return doc


def _canon(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)


@settings(max_examples=150, deadline=None)
@given(workspaces())
def test_random_valid_workspaces_validate_and_round_trip(doc: dict[str, Any]) -> None:
    result = check_workspace(doc, ValidationContext())
    assert result.errors == (), [str(e) for e in result.errors]
    cls = v1alpha1.Workspace if doc["apiVersion"].endswith("v1alpha1") else v1beta1.Workspace
    assert _canon(unstructure(structure(doc, cls))) == _canon(doc)
    other = "v1beta1" if cls is v1alpha1.Workspace else "v1alpha1"
    there, dropped = convert_workspace(doc, other)
    back, dropped_back = convert_workspace(there, doc["apiVersion"].split("/")[1])
    assert dropped == dropped_back == []
    assert _canon(back) == _canon(doc)
