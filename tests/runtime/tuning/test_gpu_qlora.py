"""QLoRA at real size on a GPU: a random-weight model with Phi-3-mini's dimensions.

Needs a CUDA GPU (``-m gpu``) and no network: the model (3.8B parameters, bf16, saved with
``save_pretrained``) and the data are built on the spot. It runs the real entrypoint
(``python -m kaito_runtime.tuning``, 4-bit NF4 base, LoRA on Phi-3's fused projections) and
prints peak GPU memory and training tokens per second, as recorded in the run's metadata and
progress events::

    pytest -m gpu tests/runtime/tuning/test_gpu_qlora.py -s
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from kaito_runtime.tuning._outputs import METADATA_FILE
from tests.runtime.tuning.helpers import write_config, write_parquet
from tests.runtime.tuning.processes import events, spawn
from tests.support.tiny_model import build_tiny_model, sample_corpus

pytestmark = pytest.mark.gpu

# microsoft/Phi-3-mini-4k-instruct's config.json.
PHI3_MINI = {
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32064,
    "max_position_embeddings": 4096,
}
STEPS = 30
BATCH = 4
MAX_LENGTH = 512
GiB = 1024**3


def _phi3_mini(directory: Path) -> Path:
    """Save a random-weight model of Phi-3-mini's size, built on the GPU, with a tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    build_tiny_model(directory)  # the tokenizer (and a tiny model, replaced below)
    (directory / "model.safetensors").unlink()
    config = AutoConfig.from_pretrained(directory, **PHI3_MINI)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    model.save_pretrained(directory, max_shard_size="2GB")
    del model
    torch.cuda.empty_cache()
    return directory


def _long_chats(n: int) -> list[dict[str, Any]]:
    corpus = sample_corpus(2000)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        answer = " ".join(corpus[(i * 31 + j) % len(corpus)] for j in range(30))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": corpus[i % len(corpus)]},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def test_qlora_phi3_mini_sized_on_the_gpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = _phi3_mini(tmp_path / "phi-3-mini")
    write_parquet(tmp_path / "data" / "train.parquet", _long_chats(BATCH * STEPS))
    config = tmp_path / "training_config.yaml"
    write_config(
        config,
        method="qlora",
        target_modules=None,  # the preset's upstream defaults, mapped to qkv_proj/gate_up_proj
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        max_length=MAX_LENGTH,
        learning_rate=2e-4,
    )
    text = config.read_text()
    text = text.replace("torch_dtype: float32", "torch_dtype: bfloat16")
    text = text.replace("bnb_4bit_compute_dtype: float32", "bnb_4bit_compute_dtype: bfloat16")
    config.write_text(text)
    out = tmp_path / "results"
    args = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "--output-dir"]
    args += [str(out), "--model", str(model), "--preset", "phi-3-mini-4k-instruct"]
    args += ["--method", "qlora", "--metrics-port", "0"]
    proc = spawn(
        "kaito_runtime.tuning",
        args,
        KAITO_TERMINATION_LOG=str(tmp_path / "termination-log"),
        OMP_NUM_THREADS="8",
        PYTORCH_CUDA_ALLOC_CONF="expandable_segments:True",
    )
    assert proc.stderr is not None
    seen = list(events(proc.stderr))
    assert proc.wait(timeout=900) == 0, (tmp_path / "termination-log").read_text()

    metadata = json.loads((out / METADATA_FILE).read_text())
    assert metadata["steps"] == STEPS
    assert metadata["method"] == "qlora"
    peak = metadata["peak_gpu_memory_bytes"]
    steady = [
        e["tokens_per_second"]
        for e in seen
        if e["event"] == "tuning_progress" and e.get("step", 0) > 3 and e.get("tokens_per_second")
    ]
    print(
        f"\nqlora_phi3_mini_gpu: device={metadata['device']} peak_gpu_memory={peak / GiB:.2f} GiB "
        f"tokens_per_second(overall)={metadata['tokens_per_second']} "
        f"tokens_per_second(steady median)={statistics.median(steady):.0f} "
        f"train_runtime={metadata['train_runtime_seconds']} s steps={STEPS} batch={BATCH} "
        f"max_length={MAX_LENGTH} tokens={metadata['train_tokens']}"
    )
    assert peak < 16 * GiB  # 4-bit 3.8B base + LoRA + activations fit a 16 GiB GPU
