"""Multi-GPU and multi-node flags of the inference command, as upstream KAITO renders them, down
to the vLLM engine arguments (vLLM's own parser checks them in ``test_vllm_tensor_parallel``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito_runtime.inference import ConfigError, InferenceSettings, PreparedAdapters
from kaito_runtime.inference._cli import build_parser, settings_from_args
from kaito_runtime.inference.backends._vllm_engine import engine_argv

NO_ADAPTERS = PreparedAdapters(by_name={}, default=None)


def _settings(*flags: str) -> InferenceSettings:
    args = build_parser().parse_args(["--model", "m", "--adapters-dir", "", *flags])
    return settings_from_args(args, {})


def _pairs(argv: list[str]) -> dict[str, str]:
    return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


def test_a_small_model_on_a_multi_gpu_node_runs_data_parallel() -> None:
    # Upstream's rendering for a model that fits one GPU of a 4-GPU SKU.
    settings = _settings("--data-parallel-size=4", "--tensor-parallel-size=1")
    argv = _pairs(engine_argv(settings, NO_ADAPTERS))
    assert argv["--data-parallel-size"] == "4"
    assert argv["--tensor-parallel-size"] == "1"
    assert argv["--pipeline-parallel-size"] == "1"
    assert "--distributed-executor-backend" not in argv


def test_a_model_across_nodes_runs_pipeline_parallel_over_ray() -> None:
    settings = _settings(
        "--tensor-parallel-size=8",
        "--pipeline-parallel-size=2",
        "--distributed-executor-backend=ray",
    )
    argv = _pairs(engine_argv(settings, NO_ADAPTERS))
    assert (argv["--tensor-parallel-size"], argv["--pipeline-parallel-size"]) == ("8", "2")
    assert argv["--distributed-executor-backend"] == "ray"


def test_the_configmap_fills_in_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "inference_config.yaml"
    config.write_text(
        "vllm:\n  tensor-parallel-size: 2\n  pipeline-parallel-size: 3\n"
        "  distributed-executor-backend: mp\n"
    )
    settings = _settings("--kaito-config-file", str(config), "--pipeline-parallel-size", "1")
    assert (settings.tensor_parallel_size, settings.pipeline_parallel_size) == (2, 1)
    assert settings.distributed_executor_backend == "mp"
    argv = engine_argv(settings, NO_ADAPTERS)
    assert argv.count("--pipeline-parallel-size") == 1  # the ConfigMap's 3 is not added again
    assert _pairs(argv)["--pipeline-parallel-size"] == "1"


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        pytest.param(["--data-parallel-size", "0"], "", "--data-parallel-size=0", id="zero"),
        pytest.param([], "vllm:\n  tensor-parallel-size: 1.5\n", "1.5", id="fraction"),
        pytest.param(
            [],
            "vllm:\n  distributed-executor-backend: slurm\n",
            "use one of: mp, ray, uni, external_launcher",
            id="backend",
        ),
    ],
)
def test_impossible_parallelism_is_refused_with_the_fix(
    tmp_path: Path, flags: list[str], config: str, message: str
) -> None:
    path = tmp_path / "inference_config.yaml"
    path.write_text(config or "{}\n")
    with pytest.raises(ConfigError) as err:
        _settings("--kaito-config-file", str(path), *flags)
    assert message in str(err.value)


def test_the_executor_backend_flag_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "m", "--distributed-executor-backend", "slurm"])
    err = capsys.readouterr().err
    assert "invalid choice: 'slurm'" in err
    assert "'external_launcher'" in err


def test_the_context_length_is_auto_unless_configured(tmp_path: Path) -> None:
    """Upstream renders ``--max-model-len=auto``: vLLM sizes the context to the KV cache that
    fits; a length in the ConfigMap (or a flag) still wins."""
    rendered = _pairs(engine_argv(_settings("--max-model-len", "auto"), NO_ADAPTERS))
    assert rendered["--max-model-len"] == "auto"
    assert _pairs(engine_argv(_settings(), NO_ADAPTERS))["--max-model-len"] == "auto"
    config = tmp_path / "inference_config.yaml"
    config.write_text("vllm:\n  max-model-len: 4096\n")
    configured = engine_argv(
        _settings("--max-model-len", "auto", "--kaito-config-file", str(config)), NO_ADAPTERS
    )
    assert configured.count("--max-model-len") == 1
    assert _pairs(configured)["--max-model-len"] == "4096"
    assert _pairs(engine_argv(_settings("--max-model-len=512"), NO_ADAPTERS))[
        "--max-model-len"
    ] == ("512")
