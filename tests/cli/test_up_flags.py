"""`kaito up`'s flags for the local stack: refused with a message that names the flag, the value
and the fix, before anything starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kaito.cli import main


def _up(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["up", *args])
    return result.exit_code, result.output


def test_the_guide_needs_the_local_kubelet() -> None:
    code, output = _up("--guide", "--kubelet", "simulated")
    assert code == 2
    assert "--guide runs real Pods: it needs --kubelet local (the default)" in output


def test_a_model_dir_must_be_preset_equals_path() -> None:
    code, output = _up("--model-dir", "phi-3-mini-128k-instruct")
    assert code == 2
    assert "'phi-3-mini-128k-instruct' is not PRESET=PATH" in output


def test_a_model_dir_names_a_known_preset(tmp_path: Path) -> None:
    code, output = _up("--model-dir", f"phi-9={tmp_path}")
    assert code == 2
    assert "'phi-9' is not a preset; known: " in output
    assert "phi-3-mini-128k-instruct" in output


def test_a_model_dir_holds_a_model(tmp_path: Path) -> None:
    code, output = _up("--model-dir", f"phi-3-mini-128k-instruct={tmp_path}")
    assert code == 2
    assert f"{tmp_path} has no config.json" in output
