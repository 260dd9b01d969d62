"""Start-up settings: flags, the inference ConfigMap, adapter discovery and strengths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaito_runtime.inference import (
    ConfigError,
    InferenceSettings,
    discover_adapters,
    load_kaito_config,
)
from kaito_runtime.inference._cli import build_parser, settings_from_args


def _adapter(root: Path, name: str) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "adapter_config.json").write_text("{}")
    return root / name


def _settings(argv: list[str], environ: dict[str, str] | None = None) -> InferenceSettings:
    return settings_from_args(build_parser().parse_args(argv), environ or {})


def test_adapters_are_subdirectories_with_strength_from_env_and_flags(tmp_path: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        _adapter(tmp_path, name)
    (tmp_path / "empty-dir").mkdir()

    found = discover_adapters(
        tmp_path, environ={"alpha": "0.25", "beta": "0.1"}, overrides={"beta": "0.75"}
    )

    assert [(a.name, a.strength) for a in found] == [
        ("alpha", 0.25),
        ("beta", 0.75),
        ("gamma", 1.0),
    ]
    assert discover_adapters(tmp_path / "missing", environ={}) == ()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "strong", "nan"])
def test_strength_outside_zero_one_is_rejected_clearly(tmp_path: Path, value: str) -> None:
    _adapter(tmp_path, "alpha")
    with pytest.raises(
        ConfigError, match=r"strength of adapter 'alpha' must be a number in \[0, 1\]"
    ):
        discover_adapters(tmp_path, environ={"alpha": value})


def test_strength_flag_for_an_unknown_adapter_names_the_known_ones(tmp_path: Path) -> None:
    _adapter(tmp_path, "alpha")
    with pytest.raises(ConfigError, match="name one of: alpha"):
        discover_adapters(tmp_path, environ={}, overrides={"nope": "0.5"})


def test_config_file_fills_what_flags_leave_unset(tmp_path: Path) -> None:
    config = tmp_path / "inference_config.yaml"
    config.write_text(
        "max_probe_steps: 8\nkv_cache_cpu_memory_utilization: 0.3\n"
        "vllm:\n  cpu-offload-gb: 0\n  max-model-len: 1024\n  gpu-memory-utilization: 0.9\n"
    )
    from_file = _settings(
        ["--model", "m", "--kaito-config-file", str(config), "--adapters-dir", ""]
    )
    flags_win = _settings(
        ["--model", "m", "--kaito-config-file", str(config), "--max-model-len", "256",
         "--gpu-memory-utilization", "0.5"]
    )  # fmt: skip

    assert (from_file.max_model_len, from_file.gpu_memory_utilization) == (1024, 0.9)
    assert from_file.max_probe_steps == 8
    assert from_file.kv_cache_cpu_memory_utilization == 0.3
    assert ("cpu-offload-gb", 0) in from_file.engine_args
    assert (flags_win.max_model_len, flags_win.gpu_memory_utilization) == (256, 0.5)
    assert from_file.served_model_name == "m"
    assert not from_file.trust_remote_code


def test_served_name_defaults_to_the_model_directory_name(tmp_path: Path) -> None:
    model = tmp_path / "phi-3-mini"
    model.mkdir()
    assert _settings(["--model", str(model)]).served_model_name == "phi-3-mini"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param("vllm: [1, 2]", "not a mapping", id="vllm-not-map"),
        pytest.param("max_probe_steps: many", "not a number", id="steps"),
        pytest.param("vllm:\n  x: [1]", "not a scalar", id="value"),
        pytest.param(": : :", "not readable YAML", id="yaml"),
    ],
)
def test_bad_config_files_are_rejected(tmp_path: Path, content: str, fragment: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        load_kaito_config(config)


def test_missing_config_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mount the inference ConfigMap"):
        load_kaito_config(tmp_path / "nope.yaml")


def test_cli_refuses_a_bad_strength_before_binding_with_a_termination_message(
    tmp_path: Path,
) -> None:
    _adapter(tmp_path / "adapters", "my-adapter")
    log = tmp_path / "termination-log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "my-adapter": "2",
        "KAITO_TERMINATION_LOG": str(log),
    }
    result = subprocess.run(
        [sys.executable, "-m", "kaito_runtime.inference", "--model", str(tmp_path),
         "--adapters-dir", str(tmp_path / "adapters"), "--port", "0"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "environment variable my-adapter='2' is invalid" in result.stderr
    assert log.read_text().startswith("inference server not started: environment variable")


def test_cli_exits_1_with_the_reason_when_the_model_cannot_load(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "KAITO_TERMINATION_LOG": str(log)}
    result = subprocess.run(
        [sys.executable, "-m", "kaito_runtime.inference", "--model", str(tmp_path / "missing"),
         "--backend", "transformers", "--host", "127.0.0.1", "--port", "0", "--adapters-dir", ""],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert log.read_text().startswith("inference server stopped: the model failed to load: ")
    assert str(tmp_path / "missing") in log.read_text()
