"""Names, labels and annotations with kube-apiserver's patterns and messages, and ObjectMeta."""

from __future__ import annotations

from kaito.apimachinery import (
    TOTAL_ANNOTATION_SIZE,
    dns1035_label_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    label_value_problems,
    object_meta_type_error,
    qualified_name_problems,
    validate_object_meta,
)


def test_dns_names() -> None:
    assert dns1123_label_problems("my-name") == []
    assert dns1123_label_problems("a.b") == ["must not contain dots"]
    assert dns1123_label_problems("A")[0].startswith(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )
    assert dns1123_label_problems("a" * 64) == ["must be no more than 63 characters"]
    assert dns1123_subdomain_problems("a.b-c") == []
    assert dns1123_subdomain_problems("a" * 254)[0] == "must be no more than 253 characters"
    assert dns1035_label_problems("1abc")[0].startswith("a DNS-1035 label must consist of")


def test_qualified_names_and_label_values() -> None:
    assert qualified_name_problems("example.com/MyName") == []
    assert qualified_name_problems("/x") == ["prefix part must be non-empty"]
    assert qualified_name_problems("a/b/c")[0].startswith("a qualified name must consist of")
    assert qualified_name_problems("x/")[0] == "name part must be non-empty"
    assert qualified_name_problems("Bad_Prefix/x")[0].startswith("prefix part a lowercase RFC 1123")
    assert label_value_problems("") == []
    assert label_value_problems("a b")[0].startswith("a valid label must be an empty string")


def test_object_meta_validation() -> None:
    ok = {"name": "n", "namespace": "ns", "labels": {"a": "b"}, "annotations": {"A/b": "x"}}
    assert validate_object_meta(ok, namespaced=True) == []
    errors = validate_object_meta(
        {
            "name": "Bad",
            "labels": {"k": "a b"},
            "annotations": {"big": "x" * TOTAL_ANNOTATION_SIZE},
            "finalizers": ["orphan", "foregroundDeletion", "a/b/c"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "1", "controller": True},
                {"apiVersion": "v1", "kind": "Pod", "name": "q", "uid": "2", "controller": True},
            ],
        },
        namespaced=True,
    )
    assert [e.field for e in errors] == [
        "metadata.name",
        "metadata.namespace",
        "metadata.labels",
        "metadata.annotations",
        "metadata.ownerReferences",
        "metadata.finalizers",
        "metadata.finalizers",
    ]
    assert str(errors[3]) == "metadata.annotations: Too long: may not be more than 262144 bytes"
    # The total counts bytes, not characters.
    assert validate_object_meta(
        {"name": "n", "annotations": {"k": "é" * (TOTAL_ANNOTATION_SIZE // 2)}}, namespaced=False
    )


def test_metadata_of_the_wrong_shape_is_a_decode_error() -> None:
    assert object_meta_type_error(None) is None
    assert object_meta_type_error({"name": "n", "labels": {"a": "b"}}) is None
    assert str(object_meta_type_error("x")) == (
        'metadata: Invalid value: "x": json: cannot unmarshal string into Go value of type '
        "v1.ObjectMeta"
    )
    error = object_meta_type_error({"labels": {"a": 1}})
    assert error is not None
    assert error.detail == (
        "json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string"
    )
    error = object_meta_type_error({"ownerReferences": [{"uid": 5}]})
    assert error is not None and "ObjectMeta.ownerReferences.uid" in error.detail
