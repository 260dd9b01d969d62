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


EMBEDDING = compile_schema(
    {
        "type": "object",
        "properties": {
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}},
            }
        },
    }
)


def test_embedded_resources_keep_their_root_fields_and_validate_them() -> None:
    value: dict[str, Any] = {
        "template": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b c"}, "junk": 1},
            "spec": {"x": "y", "z": 1},
        }
    }
    unknown: list[str] = []
    EMBEDDING.prune(value, "", unknown, root=True)
    assert sorted(unknown) == ["template.metadata.junk", "template.spec.z"]
    errors = EMBEDDING.validate(value, "", root=True)
    assert [e.field for e in errors] == ["template.metadata.labels"]
    missing = EMBEDDING.validate({"template": {"spec": {}}}, "", root=True)
    assert [str(e) for e in missing] == [
        "template.apiVersion: Required value: must not be empty",
        "template.kind: Required value: must not be empty",
    ]


def test_nulls_defaults_and_integers_follow_apiextensions() -> None:
    schema = compile_schema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "b": {"type": "string", "nullable": True},
                "c": {"type": "integer", "default": 3},
                "d": {
                    "type": "object",
                    "default": {},
                    "properties": {"e": {"type": "integer", "default": 1}},
                },
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
                "l": {"type": "array", "items": {"type": "string"}},
            },
        }
    )
    value: dict[str, Any] = {"a": None, "b": None, "c": None, "m": {"k": None}, "l": [None]}
    schema.apply_defaults(value)
    assert value == {"b": None, "c": 3, "m": {}, "l": [None], "d": {"e": 1}}
    assert [str(e) for e in schema.validate(value, "", root=True)] == [
        'l[0]: Invalid value: "null": l[0] in body must be of type string: "null"'
    ]
    assert schema.validate({"c": 2.0}, "") == []
    assert [e.detail for e in schema.validate({"c": 2.5}, "")] == [
        'c in body must be of type integer: "number"'
    ]
    assert [e.detail for e in schema.validate({"c": 2**63}, "")] == [
        'c in body must be of type integer: "number"'
    ]
    assert [e.detail for e in schema.validate({"c": float(2**60)}, "")] == [
        'c in body must be of type integer: "number"'
    ]
