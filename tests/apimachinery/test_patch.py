"""Patch formats: JSON merge patch, JSON patch, strategic merge patch and server-side apply."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.apimachinery import (
    ApplyConflict,
    JsonPatchError,
    apply_config,
    compile_schema,
    json_patch,
    merge_patch,
    strategic_merge,
)
from kaito.cluster._builtins import KIND_SCHEMAS

POD = compile_schema(KIND_SCHEMAS[("", "Pod")])


def test_merge_patch_sets_replaces_and_deletes() -> None:
    target = {"a": {"b": 1, "c": 2}, "list": [1, 2], "gone": 1}
    assert merge_patch(
        target, {"a": {"b": 3, "c": None}, "list": [3], "gone": None, "new": {"x": 1}}
    ) == {
        "a": {"b": 3},
        "list": [3],
        "new": {"x": 1},
    }


def test_json_patch_operations_and_failures() -> None:
    doc: dict[str, Any] = {"a": [1, 2], "b": {"c": 1}}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "copy", "from": "/b", "path": "/d"},
            {"op": "move", "from": "/d/c", "path": "/e"},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/e", "value": 2},
        ],
    )
    assert result == {"a": [2, 3], "b": {"c": 2}, "d": {}, "e": 2}
    with pytest.raises(JsonPatchError, match="missing"):
        json_patch({}, [{"op": "remove", "path": "/nope"}])
    with pytest.raises(JsonPatchError, match="test failed"):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])


def test_strategic_merge_merges_containers_by_name_and_honours_directives() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b:1"},
            ],
            "tolerations": [{"key": "t1"}],
        },
        "metadata": {"finalizers": ["f1"]},
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
            ],
            "tolerations": [{"key": "t2"}],
        },
        "metadata": {"finalizers": ["f2"], "$deleteFromPrimitiveList/finalizers": ["f1"]},
    }
    result = strategic_merge(pod, patch, POD)
    assert result["spec"]["containers"] == [
        {
            "name": "a",
            "image": "a:2",
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
        }
    ]
    assert result["spec"]["tolerations"] == [{"key": "t2"}]
    assert result["metadata"]["finalizers"] == ["f2"]


def test_strategic_replace_and_retain_keys() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge(original, patch, None) == {"spec": {"strategy": {"type": "Recreate"}}}
    assert strategic_merge({"a": {"x": 1, "y": 2}}, {"a": {"$patch": "replace", "z": 3}}, None) == {
        "a": {"z": 3}
    }


def test_apply_merges_removes_dropped_fields_and_detects_conflicts() -> None:
    schema = POD
    first = apply_config(
        None,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]},
        },
        schema,
        manager="alice",
        api_version="v1",
        force=False,
        now="t",
    )
    second = apply_config(
        first,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "i:2"}]},
        },
        schema,
        manager="alice",
        api_version="v1",
        force=False,
        now="t",
    )
    assert second["metadata"]["labels"] == {"a": "1"}
    assert second["spec"]["containers"] == [{"name": "c", "image": "i:2"}]
    with pytest.raises(ApplyConflict) as caught:
        apply_config(
            second,
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "9"}}},
            schema,
            manager="bob",
            api_version="v1",
            force=False,
            now="t",
        )
    assert caught.value.conflicts == [("alice", "v1", ".metadata.labels.a")]
    forced = apply_config(
        second,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "9"}}},
        schema,
        manager="bob",
        api_version="v1",
        force=True,
        now="t",
    )
    assert forced["metadata"]["labels"] == {"a": "9"}
    managers = {e["manager"] for e in forced["metadata"]["managedFields"]}
    assert managers == {"alice", "bob"}
