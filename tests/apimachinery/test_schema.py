"""Structural schemas: pruning, defaulting and validation messages as kube-apiserver words them."""

from __future__ import annotations

from typing import Any

from kaito.apimachinery import compile_schema

SCHEMA = compile_schema(
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["alpha"],
                "properties": {
                    "alpha": {"type": "string", "pattern": "^[a-z]+$"},
                    "beta": {"type": "integer", "minimum": 10, "default": 10},
                    "gamma": {"type": "string", "enum": ["foo", "bar"]},
                    "delta": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "port": {"x-kubernetes-int-or-string": True},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "keyed": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            }
        },
    }
)


def messages(value: Any) -> list[str]:
    return [e.message() for e in SCHEMA.validate(value, "", root=True)]


def test_valid_objects_pass() -> None:
    assert messages({"spec": {"alpha": "ok", "beta": 11, "port": "http", "free": {"x": 1}}}) == []


def test_validation_messages() -> None:
    assert messages({"spec": {}}) == ["spec.alpha: Required value"]
    assert messages({"spec": {"alpha": "A1"}}) == [
        "spec.alpha: Invalid value: \"A1\": spec.alpha in body should match '^[a-z]+$'"
    ]
    assert messages({"spec": {"alpha": "a", "beta": 5}}) == [
        "spec.beta: Invalid value: 5: spec.beta in body should be greater than or equal to 10"
    ]
    assert messages({"spec": {"alpha": "a", "gamma": "baz"}}) == [
        'spec.gamma: Unsupported value: "baz": supported values: "foo", "bar"'
    ]
    assert messages({"spec": {"alpha": 1}}) == [
        'spec.alpha: Invalid value: "integer": spec.alpha in body must be of type string: "integer"'
    ]
    assert messages({"spec": {"alpha": "a", "delta": ["1", "2", "3"]}}) == [
        "spec.delta: Too many: 3: must have at most 2 items"
    ]
    assert messages({"spec": {"alpha": "a", "keyed": [{"name": "x"}, {"name": "x"}]}}) == [
        'spec.keyed[1]: Duplicate value: {"name":"x"}'
    ]


def test_pruning_drops_undeclared_fields_and_reports_their_paths() -> None:
    value = {
        "apiVersion": "v",
        "kind": "K",
        "metadata": {"name": "n", "bogus": 1},
        "spec": {
            "alpha": "a",
            "extra": 1,
            "free": {"kept": True},
            "keyed": [{"name": "x", "junk": 2}],
        },
        "other": {},
    }
    unknown: list[str] = []
    SCHEMA.prune(value, "", unknown, root=True)
    assert sorted(unknown) == ["metadata.bogus", "other", "spec.extra", "spec.keyed[0].junk"]
    assert value == {
        "apiVersion": "v",
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {"alpha": "a", "free": {"kept": True}, "keyed": [{"name": "x"}]},
    }


def test_defaults_fill_missing_fields_and_replace_nulls() -> None:
    value: dict[str, Any] = {"spec": {"alpha": "a", "beta": None}}
    SCHEMA.apply_defaults(value)
    assert value["spec"]["beta"] == 10
