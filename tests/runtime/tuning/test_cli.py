"""``python -m kaito_runtime.tuning`` in-process: bad inputs exit non-zero with their message;
QLoRA on CPU runs end to end and leaves a loadable adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaito_runtime.tuning import _cli as cli
from kaito_runtime.tuning import _train as train
from kaito_runtime.tuning._outputs import COMPLETION_FILE, METADATA_FILE
from kaito_runtime.tuning._progress import PROGRESS_FILE
from tests.runtime.tuning.helpers import chat_rows, write_config, write_parquet


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("KAITO_TERMINATION_LOG", str(path))
    monkeypatch.delenv("DEFAULT_TARGET_MODULES", raising=False)
    monkeypatch.delenv("YAML_FILE_PATH", raising=False)
    return path


def _run(tmp_path: Path, model: Path | str, *extra: str, config: Path | None = None) -> int:
    return cli.main(
        [
            "--config",
            str(config or write_config(tmp_path / "config.yaml")),
            "--data-dir",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "out"),
            "--model",
            str(model),
            "--metrics-port",
            "0",
            *extra,
        ]
    )


def _progress(tmp_path: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((tmp_path / "out" / PROGRESS_FILE).read_text())
    return document


def test_missing_columns_exit_3_naming_the_columns_found(
    tmp_path: Path, tiny_model: Path, termination_log: Path
) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", [{"question": "q", "answer": "a"}] * 8)
    assert _run(tmp_path, tiny_model) == 3
    message = termination_log.read_text()
    assert "the dataset's columns (question, answer) match no supported format" in message
    assert _progress(tmp_path)["phase"] == "failed"
    assert not (tmp_path / "out" / COMPLETION_FILE).exists()


def test_a_dataset_smaller_than_the_batch_exits_3(
    tmp_path: Path, tiny_model: Path, termination_log: Path
) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", chat_rows(3))
    assert _run(tmp_path, tiny_model) == 3
    assert "the training split has 3 rows (of 3 in the dataset), fewer than " in (
        termination_log.read_text()
    )


def test_config_mistakes_exit_2(tmp_path: Path, tiny_model: Path, termination_log: Path) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", chat_rows(8))
    bad = write_config(tmp_path / "bad.yaml", per_device_train_batch_sise=2)
    assert _run(tmp_path, tiny_model, config=bad) == 2
    assert "TrainingArguments has unknown keys per_device_train_batch_sise" in (
        termination_log.read_text()
    )
    assert _run(tmp_path, tiny_model, "--method", "qlora") == 2
    assert "tuning method qlora needs" in termination_log.read_text()


def test_unknown_target_modules_exit_2_listing_the_models_layers(
    tmp_path: Path, tiny_model: Path, termination_log: Path
) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", chat_rows(8))
    config = write_config(tmp_path / "config.yaml", target_modules=["c_attn", "o_proj"])
    assert _run(tmp_path, tiny_model, config=config) == 2
    assert "its linear layers are: down_proj, gate_up_proj, lm_head, o_proj, qkv_proj" in (
        termination_log.read_text()
    )


def test_a_model_too_big_for_the_gpu_exits_4_before_loading(
    tmp_path: Path, tiny_model: Path, termination_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", chat_rows(8))
    # The device probe is the one thing this machine cannot supply: pretend a 1 MiB GPU.
    monkeypatch.setattr(train, "_gpu", lambda ranks: ("Tiny GPU", 1 << 20))
    assert _run(tmp_path, tiny_model, "--preset", "phi-3-mini-4k-instruct") == 4
    message = termination_log.read_text()
    assert message.startswith("the model 'phi-3-mini-4k-instruct' (0.00B parameters at float32)")
    assert "but the GPU (Tiny GPU) has 0.0 GiB; use tuning method qlora" in message


def test_no_target_modules_for_an_architecture_peft_does_not_know_exits_2(
    tmp_path: Path, tiny_model: Path, termination_log: Path
) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", chat_rows(8))
    config = write_config(tmp_path / "config.yaml", target_modules=None)
    assert _run(tmp_path, tiny_model, config=config) == 2
    assert "target_modules is not set and PEFT has no default for model type 'phi3'" in (
        termination_log.read_text()
    )


def test_a_missing_base_model_exits_3_with_the_fix(tmp_path: Path, termination_log: Path) -> None:
    write_parquet(tmp_path / "data" / "d.parquet", chat_rows(8))
    assert _run(tmp_path, tmp_path / "no-such-model") == 3
    message = termination_log.read_text()
    assert message.startswith(f"cannot load the base model '{tmp_path / 'no-such-model'}'")
    assert "ModelConfig.local_files_only is true, so nothing is downloaded" in message


def test_an_unreadable_config_and_no_model_exit_2(tmp_path: Path, termination_log: Path) -> None:
    code = cli.main(["--config", str(tmp_path / "none.yaml"), "--metrics-port", "0"])
    assert code == 2
    assert "cannot read the tuning config" in termination_log.read_text()
    config = write_config(tmp_path / "c.yaml")
    code = cli.main(
        ["--config", str(config), "--metrics-port", "0", "--output-dir", str(tmp_path / "out")]
    )
    assert code == 2
    assert termination_log.read_text().startswith("no base model: pass --model")


def test_qlora_on_cpu_writes_an_adapter_peft_can_load(
    tmp_path: Path, tiny_model: Path, termination_log: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", chat_rows(16))
    # No target_modules: the preset's upstream default (DEFAULT_TARGET_MODULES) applies.
    config = write_config(tmp_path / "qlora.yaml", method="qlora", target_modules=None, max_steps=2)
    code = _run(
        tmp_path,
        tiny_model,
        "--method",
        "qlora",
        "--preset",
        "phi-3-mini-4k-instruct",
        config=config,
    )
    assert code == 0, termination_log.read_text()
    out = tmp_path / "out"
    metadata = json.loads((out / METADATA_FILE).read_text())
    assert metadata["method"] == "qlora"
    assert metadata["steps"] == 2
    assert metadata["preset"] == "phi-3-mini-4k-instruct"
    # The preset's upstream defaults (q/k/v/gate/up) mapped onto Phi-3's fused modules.
    assert metadata["target_modules"] == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    assert termination_log.read_text().startswith("tuning completed: qlora adapter for phi-3")
    assert _progress(tmp_path)["phase"] == "completed"
    assert (out / COMPLETION_FILE).exists()

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, out)
    b_norms = [p.abs().sum().item() for n, p in tuned.named_parameters() if "lora_B" in n]
    assert b_norms
    assert all(norm > 0 for norm in b_norms)  # trained: B moved away from its zero init
