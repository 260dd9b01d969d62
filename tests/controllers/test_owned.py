"""The owned table is the truth: every object the renderers produce is in it, under the name it
gives, and every entry of a mode is rendered for a Workspace of that mode."""

from __future__ import annotations

from typing import Any

from kaito.api import default_template
from kaito.catalog import preset_catalog, sku_catalog
from kaito.controllers import (
    CONFIG_MAPS,
    OWNED_KINDS,
    OWNED_OBJECTS,
    TuningPlan,
    inference_config_map,
    inference_services,
    inference_statefulset,
    revision_hash,
    training_config_map,
    tuning_job,
)
from tests.controllers.test_objects import SETTINGS, inference_plan, load


def _kind_and_name(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _table(mode: str, workspace: str) -> set[tuple[str, str]]:
    return {(o.resource.kind, o.name(workspace)) for o in OWNED_OBJECTS if o.mode == mode}


def test_inference_objects_are_the_tables_inference_entries() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    plan = inference_plan(ws)
    rendered = [
        *inference_services(ws, SETTINGS),
        inference_config_map(ws, plan),
        inference_statefulset(ws, plan, SETTINGS),
    ]
    assert {_kind_and_name(o) for o in rendered} == _table("inference", "workspace-phi-3-mini")
    for obj in rendered:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["controller"] is True and owner["kind"] == "Workspace"


def test_tuning_objects_are_the_tables_tuning_entries() -> None:
    ws = load("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    preset = preset_catalog().get("phi-3-mini-128k-instruct")
    template = default_template("qlora-params-template")
    assert preset and template
    plan = TuningPlan(
        preset=preset,
        sku=sku_catalog().get("Standard_NC6s_v3"),
        config_text=template["training_config.yaml"],
        revision=revision_hash(ws),
    )
    rendered = [training_config_map(ws, plan), tuning_job(ws, plan, SETTINGS)]
    assert {_kind_and_name(o) for o in rendered} == _table("tuning", "workspace-tuning-phi-3")


def test_each_owned_kind_is_watched_once_and_only_configmaps_unlabelled() -> None:
    kinds = [k.resource for k in OWNED_KINDS]
    assert len(kinds) == len(set(kinds)) == len({o.resource for o in OWNED_OBJECTS})
    assert {k.resource for k in OWNED_KINDS if not k.labelled_only} == {CONFIG_MAPS}
