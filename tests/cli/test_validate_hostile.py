"""``kaito validate`` on hostile and malformed input (issue 13): it reads YAML exactly as the API
server does, reports what the server would refuse, and never prints a traceback."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kaito.cli import main

GOOD = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector: {matchLabels: {apps: phi}}
inference:
  preset: {name: phi-4-mini-instruct}
"""


def run(tmp_path: Path, text: str) -> tuple[Result, list[dict[str, Any]]]:
    path = tmp_path / "ws.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", "-o", "json", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output
    return result, json.loads(result.output)


def problems(report: list[dict[str, Any]]) -> list[str]:
    return [p["message"] for entry in report for p in entry["problems"]]


def test_the_good_workspace_is_valid(tmp_path: Path) -> None:
    result, report = run(tmp_path, GOOD)
    assert result.exit_code == 0, problems(report)


@pytest.mark.parametrize(
    "metadata", ["metadata: just-a-string", "metadata: [1, 2]", "metadata: 42"], ids=str
)
def test_metadata_that_is_not_a_mapping_is_refused_as_the_server_refuses_it(
    tmp_path: Path, metadata: str
) -> None:
    result, report = run(tmp_path, GOOD.replace("metadata:\n  name: ws", metadata))
    assert result.exit_code == 1
    (message,) = problems(report)
    assert message.startswith("metadata: Invalid value: ")
    assert "into Go value of type v1.ObjectMeta" in message
    assert report[0]["refusedAt"] == "decode"


def test_non_string_keys_become_strings_as_on_the_server(tmp_path: Path) -> None:
    text = GOOD.replace("  name: ws", "  name: ws\n  labels: {1: one, true: yes-ish, 1.5: x}")
    result, report = run(tmp_path, text)
    assert result.exit_code == 0, problems(report)
    null_key = GOOD + "~: null-key\n"
    result, report = run(tmp_path, null_key)
    assert result.exit_code == 1
    assert "unsupported map key of type: <nil>" in problems(report)[0]
    compound_key = GOOD + "? [a, b]\n: compound\n"
    result, report = run(tmp_path, compound_key)
    assert result.exit_code == 1
    assert "invalid map key" in problems(report)[0]


@pytest.mark.parametrize("depth", [300, 600, 5000])
def test_deep_nesting_is_refused_not_a_traceback(tmp_path: Path, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    text = GOOD.replace("  preset: {name: phi-4-mini-instruct}", f"  template: {{x: {deep}}}")
    result, report = run(tmp_path, text)
    assert result.exit_code == 1
    assert any("exceeded max" in m and "depth" in m for m in problems(report)), problems(report)


def test_integers_beyond_int64_are_refused_like_the_server(tmp_path: Path) -> None:
    text = GOOD.replace("  instanceType:", "  count: 99999999999999999999\n  instanceType:")
    result, report = run(tmp_path, text)
    assert result.exit_code == 1
    assert problems(report) == [
        'resource.count: Invalid value: "number": resource.count in body must be of type '
        'integer: "number"; use 1 or more nodes'
    ]
    assert report[0]["refusedAt"] == "schema"


def test_annotations_over_256_kib_are_refused(tmp_path: Path) -> None:
    big = "x" * (256 * 1024)
    text = GOOD.replace("  name: ws", f"  name: ws\n  annotations: {{note: {big}}}")
    result, report = run(tmp_path, text)
    assert result.exit_code == 1
    assert "metadata.annotations: Too long: may not be more than 262144 bytes" in problems(report)


@pytest.mark.parametrize("value", ["a b", "-starts-with-dash", "x" * 64])
def test_bad_label_values_are_refused(tmp_path: Path, value: str) -> None:
    text = GOOD.replace("  name: ws", f"  name: ws\n  labels: {{team: '{value}'}}")
    result, report = run(tmp_path, text)
    assert result.exit_code == 1
    assert any(m.startswith("metadata.labels: Invalid value: ") for m in problems(report))


def test_duplicate_keys_are_strict_decoding_errors(tmp_path: Path) -> None:
    text = GOOD.replace("  name: ws", "  name: ws\n  name: ws2")
    result, report = run(tmp_path, text)
    assert result.exit_code == 1
    assert problems(report) == ["metadata.name: Duplicate field: the key is given more than once"]
    assert report[0]["refusedAt"] == "decode"


def test_a_yaml_date_stays_a_string_as_on_the_server(tmp_path: Path) -> None:
    text = GOOD.replace("  name: ws", "  name: ws\n  annotations: {created: 2024-01-01}")
    result, report = run(tmp_path, text)
    assert result.exit_code == 0, problems(report)


def test_yaml_booleans_follow_go_yaml(tmp_path: Path) -> None:
    """``y`` is a boolean to the API server's YAML reader, so a label value ``y`` is refused."""
    result, report = run(tmp_path, GOOD.replace("apps: phi", "apps: y"))
    assert result.exit_code == 1
    assert 'must be of type string: "boolean"' in problems(report)[0]


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in itertools.pairwise("abcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = "\n".join(lines) + "\n"
    assert len(bomb) < 1024
    result, report = run(tmp_path, GOOD.replace("  name: ws", "  name: ws") + bomb)
    assert result.exit_code == 1
    assert "document contains excessive aliasing" in problems(report)[0]


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    result, report = run(tmp_path, GOOD + "loop: &loop [*loop]\n")
    assert result.exit_code == 1
    assert "recursive alias" in problems(report)[0]


def test_not_utf8_and_binary_input(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
