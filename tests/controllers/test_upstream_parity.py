"""The drift test: every path of ``upstream_fields.yaml`` rendered by our controller, field by field.

Each entry of the table is checked against what we render (upstream's value where we agree, our
documented value where we differ on purpose); every field and command flag we render must be listed;
every deliberate difference must name a section of ``docs/upstream-parity.md``; and the doc's tables
must be the ones generated from the table.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.controllers.parity import (
    DOC,
    END,
    MISSING,
    START,
    Step,
    covered,
    deliberate,
    doc_tables,
    entries,
    get,
    leaves,
    load_table,
    parse_path,
    render,
    show,
)

TABLE = load_table()
PATHS = TABLE["paths"]


def _absent(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("<absent")


def _check(what: str, ours: Any, spec: Any) -> list[str]:
    """The problems of one entry: ``ours`` is the rendered value, or :data:`MISSING`."""
    if not deliberate(spec):
        if _absent(spec):
            return [] if ours is MISSING else [f"{what}: upstream has none, ours is {ours!r}"]
        if ours is MISSING:
            return [f"{what}: missing, upstream renders {spec!r}"]
        return [] if ours == spec else [f"{what}: ours is {ours!r}, upstream's {spec!r}"]
    if spec["deliberate"] not in TABLE["deliberate"]:
        return [f"{what}: deliberate id {spec['deliberate']!r} is not in the table's list"]
    if "ours" in spec:
        want = spec["ours"]
        if _absent(want):
            return [] if ours is MISSING else [f"{what}: documented absent, ours is {ours!r}"]
        return [] if ours == want else [f"{what}: ours is {ours!r}, documented {want!r}"]
    upstream = spec.get("upstream")
    if _absent(upstream):
        return [f"{what}: documented as ours alone, but not rendered"] if ours is MISSING else []
    if ours == upstream:
        return [f"{what}: now equal to upstream's {upstream!r}: make it a plain entry"]
    return []


# -- command flags ------------------------------------------------------------------------------


def _command(obj: Mapping[str, Any], container: str) -> list[str]:
    """The main container's argv; a ``sh -c`` script up to its first ``&&``."""
    spec = obj["spec"]["template"]["spec"]
    found = [c for c in spec["containers"] if c["name"] == container]
    assert found, f"no container {container!r}"
    argv = [*found[0].get("command", []), *found[0].get("args", [])]
    if argv[:2] == ["sh", "-c"]:
        words = shlex.split(argv[2])
        argv = words[: words.index("&&")] if "&&" in words else words
    return argv


def flags(argv: list[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` as a dict (``""`` for a flag without a value)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("--") or word == "--":
            continue
        name, eq, value = word[2:].partition("=")
        if not eq:
            value = ""
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
        assert name not in out, f"flag --{name} given twice in {argv}"
        out[name] = value
    return out


def _check_flags(ours: dict[str, str], table: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    listed: set[str] = set()
    for name, spec in table.items():
        if isinstance(spec, Mapping) and "as" in spec:
            renamed = spec["as"].removeprefix("--")
            listed.add(renamed)
            want = spec.get("ours", spec["upstream"])
            if ours.get(renamed) != want:
                problems.append(
                    f"--{renamed} (upstream's --{name}): {ours.get(renamed)!r}, want {want!r}"
                )
            continue
        listed.add(name)
        problems += _check(f"--{name}", ours.get(name, MISSING), spec)
    problems += [f"--{name}={value!r} is rendered but not in the table" for name, value in ours.items()
                 if name not in listed]  # fmt: skip
    return problems


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PATHS))
def test_path_renders_as_the_table_says(name: str) -> None:
    path = PATHS[name]
    rendered = render(path).objects
    problems: list[str] = []
    table_objects: Mapping[str, Any] = path["objects"]
    problems += [
        f"{key}: rendered but not in the table" for key in rendered if key not in table_objects
    ]
    for key, fields in table_objects.items():
        obj = rendered.get(key, MISSING)
        if deliberate(fields) or _absent(fields):
            problems += _check(key, obj, fields)
            continue
        if obj is MISSING:
            problems.append(f"{key}: in the table, not rendered")
            continue
        listed = list(entries(fields))
        paths: list[list[Step]] = [parse_path(field) for field, _ in listed]
        for (field, spec), steps in zip(listed, paths, strict=True):
            problems += _check(f"{key} {field}", get(obj, steps), spec)
        problems += [f"{key} {show(leaf)} = {get(obj, list(leaf))!r}: rendered but not in the table"
                     for leaf in leaves(obj) if not covered(leaf, paths)]  # fmt: skip
    if "flags" in path:
        key = _main_workload(rendered)
        argv = _command(rendered[key], key.partition("/")[2])
        problems += _check_flags(flags(argv), path["flags"])
    assert not problems, "\n".join(problems)


def _main_workload(rendered: Mapping[str, Any]) -> str:
    for key in rendered:
        if key.partition("/")[0] in {"StatefulSet", "Job"}:
            return key
    raise AssertionError("no StatefulSet or Job rendered")


def _used_ids(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if "deliberate" in node and isinstance(node["deliberate"], str):
            yield node["deliberate"]
        for value in node.values():
            yield from _used_ids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _used_ids(item)


def test_every_deliberate_difference_is_used_and_documented() -> None:
    used = set(_used_ids(PATHS))
    listed = set(TABLE["deliberate"])
    assert used <= listed, f"ids used but not listed: {sorted(used - listed)}"
    assert listed <= used, f"ids listed but never used: {sorted(listed - used)}"
    doc = DOC.read_text()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', doc))
    assert listed <= anchors, (
        f"no section in docs/upstream-parity.md for {sorted(listed - anchors)}"
    )


def test_doc_tables_are_generated_from_the_table() -> None:
    doc = DOC.read_text()
    assert START in doc and END in doc
    generated = doc.partition(START)[2].partition(END)[0].strip()
    assert generated == doc_tables(TABLE), (
        "docs/upstream-parity.md is stale: run python -m tests.controllers.parity --write"
    )


def test_flags_parse_both_spellings() -> None:
    assert flags(["run", "--a", "1", "--b", "--c=x", "--", "--d", "y"]) == {
        "a": "1",
        "b": "",
        "c": "x",
        "d": "y",
    }


def test_drift_is_caught() -> None:
    """The checks fail when ours or upstream's value moves (the test can fail)."""
    assert _check("f", 2, 1)
    assert _check("f", MISSING, 1)
    assert _check("f", 1, "<absent>")
    assert _check("f", 1, {"upstream": 1, "deliberate": "runtime-image"})
    assert _check("f", 1, {"upstream": 0, "ours": 2, "deliberate": "runtime-image"})
    assert _check("f", 1, {"upstream": 0, "ours": 1, "deliberate": "not-an-id"})
    assert not _check("f", 1, {"upstream": "<absent>", "deliberate": "runtime-image"})
    assert _check_flags({"x": "1"}, {}) == ["--x='1' is rendered but not in the table"]
