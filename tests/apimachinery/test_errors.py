"""One field error, rendered as kube-apiserver renders ``field.Error`` (text and ``StatusCause``)."""

from __future__ import annotations

import pytest

from kaito.apimachinery import (
    ErrorType,
    FieldError,
    InvalidSpecError,
    duplicate,
    forbidden,
    go_quote,
    invalid,
    invalid_message,
    not_supported,
    render_value,
    required,
    too_long,
    too_many,
    type_invalid,
    unknown_field,
)


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (required("spec.a"), "spec.a: Required value"),
        (required("spec.a", "needed"), "spec.a: Required value: needed"),
        (invalid("spec.a", "x", "bad"), 'spec.a: Invalid value: "x": bad'),
        (invalid("spec.a", 1.5, "bad"), "spec.a: Invalid value: 1.5: bad"),
        (invalid("spec.a", 1e6, "bad"), "spec.a: Invalid value: 1e+06: bad"),
        (invalid("spec.a", True, "bad"), "spec.a: Invalid value: true: bad"),
        (invalid("spec.a", None, "bad"), "spec.a: Invalid value: null: bad"),
        (invalid("spec.a", {"b": [1]}, "bad"), 'spec.a: Invalid value: {"b":[1]}: bad'),
        (
            not_supported("spec.m", "x", ["a", "b"]),
            'spec.m: Unsupported value: "x": supported values: "a", "b"',
        ),
        (forbidden("spec.f", "no"), "spec.f: Forbidden: no"),
        (duplicate("spec.l[1]", "v"), 'spec.l[1]: Duplicate value: "v"'),
        (too_many("spec.l", 3, 2), "spec.l: Too many: 3: must have at most 2 items"),
        (
            too_long("metadata.annotations", 262144),
            "metadata.annotations: Too long: may not be more than 262144 bytes",
        ),
        (
            type_invalid("spec.n", "string", 'spec.n in body must be of type integer: "string"'),
            'spec.n: Invalid value: "string": spec.n in body must be of type integer: "string"',
        ),
        (
            invalid("spec.s", "1.5", "bad", fix="use 0.5"),
            'spec.s: Invalid value: "1.5": bad; use 0.5',
        ),
        (unknown_field("spec.x", "not declared"), "spec.x: Unknown field: not declared"),
    ],
)
def test_messages_match_apimachinery(error: FieldError, text: str) -> None:
    assert str(error) == text
    assert error.message() == text
    assert error.cause() == {
        "reason": error.type.reason,
        "message": text.split(": ", 1)[1],
        "field": error.field,
    }


def test_cause_reasons_are_kube_apiservers() -> None:
    assert required("a").cause()["reason"] == "FieldValueRequired"
    assert type_invalid("a", "string", "x").cause()["reason"] == "FieldValueTypeInvalid"
    assert too_long("a", 1).cause()["reason"] == "FieldValueTooLong"
    assert FieldError("NotSupported", "a", "x").type is ErrorType.NOT_SUPPORTED


def test_values_are_quoted_as_go_quotes_them() -> None:
    assert go_quote('a"b\\c\n\t\x00é\u2028') == '"a\\"b\\\\c\\n\\t\\x00é\\u2028"'
    assert render_value(10**20) == "100000000000000000000"
    assert render_value([1, "a"]) == '[1,"a"]'


def test_aggregates_drop_duplicates_and_bracket_many() -> None:
    one = invalid("a", 1, "bad")
    assert (
        invalid_message("Kind.group", "n", [one])
        == 'Kind.group "n" is invalid: a: Invalid value: 1: bad'
    )
    assert invalid_message("K", "n", [one, one, required("b")]) == (
        'K "n" is invalid: [a: Invalid value: 1: bad, b: Required value]'
    )
    assert invalid_message("K", "", []) == 'K "" is invalid'
    error = InvalidSpecError([one, FieldError("Invalid", "w", detail="x", warning=True)], name="n")
    assert str(error) == 'Workspace "n" is invalid: a: Invalid value: 1: bad'


def test_errors_nest_under_a_prefix() -> None:
    assert required("b").under("a").field == "a.b"
    assert required("[0]").under("a").field == "a[0]"
    assert required("").under("a").field == "a"
    assert required("b").under("").field == "b"
