"""Fuzzing ``kaito validate`` (hypothesis): any bytes, any YAML, any Workspace-shaped document
give exit code 0 or 1 and a report, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kaito.cli import main
from tests.api.test_front_door_parity import workspaces
from tests.support.fuzz import FuzzBudget, fuzz_seconds, hypothesis_budget

pytestmark = pytest.mark.fuzz

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["y", "on", "0x1F", "017", "1e3", "2024-01-01", "~", ".nan", "<<"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)
TEXT_PIECES = st.sampled_from(
    [
        "apiVersion: kaito.sh/v1beta1\n",
        "kind: Workspace\n",
        "metadata: {name: w}\n",
        "metadata: x\n",
        "&a [1, *a]\n",
        "a: &x [1]\nb: *x\n",
        "? [k]\n: v\n",
        "~: 1\n",
        "---\n",
        "resource: {count: 99999999999999999999}\n",
        "!!binary ????\n",
        "  bad indent: [\n",
        "\t\x00\xff",
    ]
)


def documents() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.lists(TEXT_PIECES, max_size=6).map(lambda parts: "".join(parts).encode()),
        workspaces().map(str.encode),
        JSONISH.map(
            lambda v: yaml.safe_dump(
                {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "x": v}
            ).encode()
        ),
        st.builds(
            lambda meta, resource: json.dumps(
                {
                    "apiVersion": "kaito.sh/v1alpha1",
                    "kind": "Workspace",
                    "metadata": meta,
                    "resource": resource,
                    "inference": {"preset": {"name": "phi-4-mini-instruct"}},
                }
            ).encode(),
            JSONISH,
            JSONISH,
        ),
    )


def test_kaito_validate_fuzz(tmp_path: Path) -> None:
    budget = FuzzBudget()
    path = tmp_path / "input.yaml"

    @settings(hypothesis_budget(), max_examples=max(20, int(40 * fuzz_seconds())))
    @given(data=documents(), as_json=st.booleans())
    def run(data: bytes, as_json: bool) -> None:
        if not budget.spend():
            return
        path.write_bytes(data)
        args = ["validate", "-o", "json", str(path)] if as_json else ["validate", str(path)]
        result = CliRunner().invoke(main, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), data
        assert result.exit_code in (0, 1), (data, result.output)
        assert "Traceback" not in result.output
        if as_json:
            json.loads(result.output)

    run()
    budget.report("kaito validate")
