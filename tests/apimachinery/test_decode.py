"""The decoder reads JSON and YAML as kube-apiserver does (``sigs.k8s.io/json``,
``sigs.k8s.io/yaml``), with the body, alias-expansion and depth limits."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.apimachinery import (
    MAX_BODY_BYTES,
    Decoded,
    DecodeError,
    DecodeLimits,
    decode_json,
    decode_yaml,
    decode_yaml_stream,
)


def yaml_value(text: str) -> Any:
    return decode_yaml(f"v: {text}\n").value["v"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("y", True),
        ("On", True),
        ("n", False),
        ("off", False),
        ("true", True),
        ("tRUE", "tRUE"),
        ("~", None),
        ("", None),
        ("Null", None),
        ("2024-01-01", "2024-01-01"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("1:30", "1:30"),  # go-yaml has no base-60 numbers
        ("0x1F", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("017", 15),  # a leading zero is octal, as Go's ParseInt(s, 0, 64)
        ("08", 8),  # not octal, but a float that JSON prints as 8
        ("1_000", 1000),
        ("1e3", 1000),  # a float, then an integer after the JSON round trip
        ("1.0", 1),
        ("1.5", 1.5),
        (".5", 0.5),
        ("-0.0", 0),
        ("9223372036854775807", 9223372036854775807),
        ("9223372036854775808", 9.223372036854775808e18),  # beyond int64: a float in Go
        ("99999999999999999999", 1e20),
        ("'1'", "1"),
        ('"yes"', "yes"),
        ("!!str 12", "12"),
        ("!!int '12'", 12),
        ("!!float 1", 1),
        ("!!binary aGVsbG8=", "hello"),
        ("!custom text", "text"),
        ("nan", "nan"),
        ("<<", "<<"),
    ],
)
def test_yaml_scalars_are_typed_as_go_yaml_v2_types_them(text: str, expected: Any) -> None:
    value = yaml_value(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (".nan", "json: unsupported value: NaN"),
        ("-.inf", "json: unsupported value: -Inf"),
        ("!!int abc", "cannot decode !!str `abc` as a !!int"),
        ("!!bool 1", "cannot decode !!int `1` as a !!bool"),
    ],
)
def test_values_json_cannot_hold_are_errors(text: str, message: str) -> None:
    with pytest.raises(DecodeError) as error:
        yaml_value(text)
    assert message in error.value.message
    assert error.value.message.startswith("error converting YAML to JSON: ")


def test_keys_become_strings_as_sigs_k8s_io_yaml_converts_them() -> None:
    value = decode_yaml("1: a\ntrue: b\non: c\n1.5: d\n0x10: e\n1e3: f\n").value
    assert value == {"1": "a", "true": "c", "1.5": "d", "16": "e", "1000": "f"}
    assert decode_yaml("1: a\ntrue: b\non: c\n").duplicates == ("true",)
    for text, problem in [
        ("~: x\n", "unsupported map key of type: <nil>"),
        ("? [a]\n: x\n", "invalid map key"),
        ("? {a: 1}\n: x\n", "invalid map key"),
        ("18446744073709551615: x\n", "unsupported map key of type: uint64"),
    ]:
        with pytest.raises(DecodeError) as error:
            decode_yaml(text)
        assert problem in error.value.message


def test_duplicate_keys_are_reported_with_their_paths_and_the_last_wins() -> None:
    decoded = decode_yaml("a: 1\nb: {c: 1, c: 2}\nl: [{x: 1, x: 2}]\na: 3\n")
    assert decoded.value == {"a": 3, "b": {"c": 2}, "l": [{"x": 2}]}
    assert sorted(decoded.duplicates) == ["a", "b.c", "l[0].x"]
    as_json = decode_json(b'{"a": 1, "b": {"c": 1, "c": 2}, "l": [{"x": 1, "x": 2}], "a": 3}')
    assert as_json.value == {"a": 3, "b": {"c": 2}, "l": [{"x": 2}]}
    assert sorted(as_json.duplicates) == ["a", "b.c", "l[0].x"]


def test_merge_keys_follow_go_yaml() -> None:
    text = "base: &b {p: 1, q: 2}\nother: &o {q: 3, r: 4}\nm:\n  <<: [*b, *o]\n  w: 0\n"
    assert decode_yaml(text).value["m"] == {"p": 1, "q": 2, "r": 4, "w": 0}
    # A key "y" (or "n", "on") is a boolean to go-yaml v2, so it becomes "true".
    assert decode_yaml("y: 1\nn: 2\n").value == {"true": 1, "false": 2}
    with pytest.raises(DecodeError, match="map merge requires map"):
        decode_yaml("m:\n  <<: [1]\n")


def test_aliases_are_expanded_into_independent_copies() -> None:
    value = decode_yaml("a: &x {k: [1]}\nb: *x\n").value
    value["a"]["k"].append(2)
    assert value["b"] == {"k": [1]}


def test_an_alias_bomb_is_refused_before_anything_is_built() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(DecodeError) as error:
        decode_yaml("\n".join(lines))
    assert "document contains excessive aliasing" in error.value.message
    assert error.value.line is not None


def test_alias_expansion_is_counted_against_the_body_limit() -> None:
    doc = "a: &x " + "y" * 1000 + "\n" + "".join(f"k{i}: *x\n" for i in range(500))
    assert len(decode_yaml(doc).value) == 501
    with pytest.raises(DecodeError, match="excessive aliasing"):
        decode_yaml(doc, DecodeLimits(max_bytes=100_000))
    with pytest.raises(DecodeError, match="recursive alias"):
        decode_yaml("a: &a [1, *a]\n")


@pytest.mark.parametrize("decode", [decode_json, decode_yaml])
def test_nesting_is_limited(decode: Any) -> None:
    fine = "[" * 200 + "]" * 200
    assert decode(fine).value is not None
    with pytest.raises(DecodeError, match="exceeded max depth of 200"):
        decode("[" * 201 + "]" * 201)
    with pytest.raises(DecodeError, match="depth"):
        decode("[" * 100_000 + "]" * 100_000)


def test_json_numbers_and_text_follow_go() -> None:
    value = decode_json(
        b"[1, 1.0, 9223372036854775807, 9223372036854775808, -9223372036854775809, 1e2,"
        b' "\\ud800", "\xff"]'
    ).value
    assert value[:3] == [1, 1.0, 9223372036854775807]
    assert type(value[1]) is float  # JSON keeps "1.0" a float (the schema accepts it as integer)
    assert value[3:6] == [9.223372036854775808e18, -9.223372036854775809e18, 100.0]
    assert all(type(v) is float for v in value[3:6])
    assert value[6:] == ["\ufffd", "\ufffd"]
    for bad in (b"NaN", b"[Infinity]", b"{", b"[1e999]", b'{"a":}'):
        with pytest.raises(DecodeError):
            decode_json(bad)


def test_yaml_bodies_that_are_json_keep_yaml_number_semantics() -> None:
    assert decode_yaml(b'{"count": 2.0, "ratio": 0.5}').value == {"count": 2, "ratio": 0.5}


def test_bodies_over_the_limit_are_refused() -> None:
    big = b'"' + b"x" * MAX_BODY_BYTES + b'"'
    for decode in (decode_json, decode_yaml):
        with pytest.raises(DecodeError, match="Request entity too large"):
            decode(big)


def test_a_stream_reports_each_document_on_its_own() -> None:
    stream = (
        "a: 1\n---\n---\nb: &x [*x]\n---\n# only a comment\n---\nc: {d: 1, d: 2}\n---\nbad: [\n"
    )
    results = list(decode_yaml_stream(stream))
    assert [type(r).__name__ for r in results] == [
        "Decoded",
        "DecodeError",
        "Decoded",
        "DecodeError",
    ]
    first, recursive, third, syntax = results
    assert isinstance(first, Decoded) and first.value == {"a": 1} and first.line == 1
    assert isinstance(recursive, DecodeError) and recursive.line == 4
    assert isinstance(third, Decoded) and third.duplicates == ("c.d",)
    assert isinstance(syntax, DecodeError) and syntax.line is not None
    assert "did not find expected node content" in syntax.message
