"""The Workspace decoded once: per (uid, resourceVersion), in a bounded cache, and the same typed
form and verdict as the webhook's pipeline; one validation context from the settings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

import kaito.webhooks._review as review_module
from kaito.api import Checked, ValidationContext, check_workspace, convert_workspace
from kaito.controllers import (
    ControllerSettings,
    WorkspaceDecoder,
    revision_hash,
    validation_context,
)
from kaito.webhooks import validate_review
from kaito_runtime import contract

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def stored(name: str = "ws", uid: str = "u-1", rv: str = "1") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        (EXAMPLES / "inference/kaito_workspace_phi_3.yaml").read_text()
    )
    doc["metadata"].update(name=name, namespace="default", uid=uid, resourceVersion=rv)
    beta, _ = convert_workspace(doc, "v1beta1")  # as the informer lists it
    return beta


def test_a_version_is_decoded_once() -> None:
    decoder = WorkspaceDecoder()
    raw = stored()
    first = decoder.decode(raw)
    again = decoder.decode(copy.deepcopy(raw))  # a relist's copy of the same version
    assert again.workspace is first.workspace and again.checked is first.checked
    assert (decoder.hits, decoder.misses) == (1, 1)
    newer = decoder.decode(stored(rv="2"))
    assert newer.workspace is not first.workspace
    # The newer version replaced the older one: a superseded version is never held.
    assert (decoder.hits, decoder.misses, len(decoder)) == (1, 2, 1)
    decoder.forget("u-1")
    assert len(decoder) == 0


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    decoder = WorkspaceDecoder(max_size=2)
    a, b, c = stored(uid="a"), stored(uid="b"), stored(uid="c")
    decoder.decode(a)
    decoder.decode(b)
    decoder.decode(a)  # a is now the most recent
    decoder.decode(c)  # evicts b
    assert len(decoder) == 2
    misses = decoder.misses
    decoder.decode(a)
    assert decoder.misses == misses
    decoder.decode(b)
    assert decoder.misses == misses + 1
    with pytest.raises(ValueError, match="max_size=0"):
        WorkspaceDecoder(max_size=0)


def test_objects_not_stored_yet_are_never_cached() -> None:
    decoder = WorkspaceDecoder()
    raw = stored()
    del raw["metadata"]["resourceVersion"]
    assert decoder.decode(raw).workspace is not decoder.decode(raw).workspace
    assert len(decoder) == 0


def test_each_served_version_is_its_own_entry() -> None:
    decoder = WorkspaceDecoder()
    beta = stored()
    alpha, _ = convert_workspace(beta, "v1alpha1")
    assert (beta["apiVersion"], alpha["apiVersion"]) == ("kaito.sh/v1beta1", "kaito.sh/v1alpha1")
    one = decoder.decode(beta)
    other = decoder.decode(alpha)
    assert other.workspace is not one.workspace  # decoded again: another served version
    assert other.workspace == one.workspace  # ...into the same storage-version object
    assert decoder.misses == 2


def test_decoded_form_and_verdict_are_the_webhook_pipelines() -> None:
    decoder = WorkspaceDecoder()
    good, bad = stored(), stored(uid="u-2")
    bad["resource"]["instanceType"] = "m5.large"
    bad["inference"]["unknownField"] = 1
    for raw in (good, bad):
        decoded = decoder.decode(raw)
        checked = check_workspace(raw)
        assert decoded.workspace == checked.workspace
        assert decoded.checked.errors == tuple(
            e for e in checked.errors if e.field == "inference.unknownField"
        )
        assert decoded.revision("x") == revision_hash(decoded.workspace, "x")


def test_a_document_that_cannot_be_decoded_still_gives_a_workspace_to_report_on() -> None:
    raw = stored()
    raw["apiVersion"] = "kaito.sh/v9"
    decoded = WorkspaceDecoder().decode(raw)
    assert decoded.checked.workspace is None
    assert decoded.checked.errors
    assert decoded.workspace.metadata.name == "ws"


def test_a_review_decodes_each_document_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = review_module.decode_workspace

    def counting(doc: Any) -> Checked:
        calls.append(doc["metadata"]["name"])
        return real(doc)

    monkeypatch.setattr(review_module, "decode_workspace", counting)
    old, new = stored(), stored()
    new["inference"]["preset"]["name"] = "phi-4"
    review = {
        "request": {"uid": "r", "operation": "UPDATE", "object": new, "oldObject": old},
    }
    response = validate_review(review, ValidationContext())["response"]
    assert response["allowed"] is False  # the preset is immutable
    assert calls == ["ws", "ws"]


def test_one_validation_context_from_the_settings() -> None:
    settings = ControllerSettings(
        node_auto_provisioning=False,
        vllm_enabled=False,
        enable_mig=True,
        enable_accelerator=True,
        cloud="aws",
        release_namespace="kaito",
        allow_local_urls=True,
    )
    ctx = validation_context(settings)
    shared = {f.name for f in attrs.fields(ValidationContext) if hasattr(settings, f.name)}
    assert shared == {
        "node_auto_provisioning", "vllm_enabled", "enable_mig", "enable_accelerator", "cloud",
        "release_namespace", "allow_local_urls",
    }  # fmt: skip
    assert all(getattr(ctx, name) == getattr(settings, name) for name in shared)
    assert ctx.config_maps is None and ctx.nodes is None
    assert settings.server_port == contract.SERVER_PORT
