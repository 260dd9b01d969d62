"""Tuning runtime benchmarks: training throughput and adapter push/pull throughput.

- ``tuning_train_tokens_per_s``: our entrypoint (``kaito_runtime.tuning._cli.main``, config parsing,
  dataset checks, progress callbacks and all) against a plain TRL ``SFTTrainer`` script with the
  identical model, data, LoRA and training settings. Both count TRL's training tokens over the
  Trainer's ``train_runtime``. Runs alternate, after one warm-up each; the median of N is shown.
- ``tuning_two_processes``: ``python -m kaito_runtime.launch tuning --cpu`` with two processes
  (gloo, one torch thread each: the CPU stand-in for two GPUs) against the same launcher with one
  process, at the same global batch (two x 4 rows against one x 8) on a larger tiny model.
  Tokens per second are rank 0's count of every process's tokens over the Trainer's runtime.
- ``adapter_push_mb_per_s`` / ``adapter_pull_mb_per_s``: ``kaito_runtime.oci`` pushing to and
  pulling from a real ``docker-registry`` on loopback, against copying the same bytes on disk.

Run: ``nox -s bench -- tuning`` (or ``python -m benchmarks tuning``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNS = int(os.environ.get("KAITO_BENCH_RUNS", "5"))
SEED = 1234
STEPS = 30
BATCH = 4
MAX_LENGTH = 64
LEARNING_RATE = 2e-3
TARGETS = ["qkv_proj", "o_proj"]
ADAPTER_MIB = 64


def _dataset(directory: Path) -> Path:
    from tests.runtime.tuning.helpers import chat_rows, write_parquet

    return write_parquet(directory / "data" / "train.parquet", chat_rows(96))


def _config(path: Path) -> Path:
    from tests.runtime.tuning.helpers import write_config

    return write_config(
        path,
        target_modules=TARGETS,
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        learning_rate=LEARNING_RATE,
        max_length=MAX_LENGTH,
        seed=SEED,
        save_strategy="no",
    )


def _ours(model: Path, work: Path, config: Path, run: int) -> float:
    from kaito_runtime.tuning import main

    out = work / f"ours-{run}"
    args = ["--config", str(config), "--data-dir", str(work / "data"), "--output-dir", str(out)]
    code = main([*args, "--model", str(model), "--metrics-port", "0"])
    if code != 0:
        raise RuntimeError(f"our entrypoint failed with exit code {code}")
    metadata = json.loads((out / "kaito_tuning_metadata.json").read_text())
    return float(metadata["train_tokens"]) / float(metadata["train_runtime_seconds"])


def _plain_trl(model: Path, work: Path, run: int) -> float:
    """The baseline: the shortest TRL script with the same settings as the config above."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    class Tokens(TrainerCallback):
        seen = 0.0

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "num_tokens" in logs:
                Tokens.seen = float(logs["num_tokens"])

    data = datasets.load_dataset(
        "parquet",
        data_files=str(work / "data" / "train.parquet"),
        split="train",
        cache_dir=str(work / f"cache-{run}"),
    ).shuffle(seed=42)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
        args=SFTConfig(
            output_dir=str(work / f"plain-{run}"),
            max_steps=STEPS,
            per_device_train_batch_size=BATCH,
            learning_rate=LEARNING_RATE,
            max_length=MAX_LENGTH,
            seed=SEED,
            save_strategy="no",
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            disable_tqdm=True,
        ),
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(model),
        peft_config=LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM"
        ),
        callbacks=[Tokens()],
    )
    trainer.remove_callback(PrinterCallback)  # no printing in either run
    output = trainer.train()
    return Tokens.seen / float(output.metrics["train_runtime"])


def _median_pair(
    first: Callable[[int], float], second: Callable[[int], float]
) -> tuple[float, float]:
    first(-1)  # warm-up: imports, allocator, kernels
    second(-1)
    a, b = [], []
    for run in range(RUNS):
        a.append(first(run))
        b.append(second(run))
    return statistics.median(a), statistics.median(b)


def _training_line(work: Path) -> str:
    from tests.support.tiny_model import build_tiny_model

    model = build_tiny_model(work / "model")
    _dataset(work)
    config = _config(work / "training_config.yaml")
    ours, plain = _median_pair(
        lambda run: _ours(model, work, config, run), lambda run: _plain_trl(model, work, run)
    )
    return (
        f"tuning_train_tokens_per_s: ours={ours:.0f} tokens/s "
        f"baseline[plain TRL SFTTrainer script]={plain:.0f} tokens/s ratio={ours / plain:.2f}"
    )


GLOBAL_BATCH = 8
PARALLEL_STEPS = 40
PARALLEL_MAX_LENGTH = 128


def _launched(model: Path, work: Path, processes: int, run: int) -> float:
    """Tokens per second of one launcher run with ``processes`` CPU processes."""
    import subprocess
    import sys

    from tests.runtime.tuning.helpers import write_config

    out = work / f"p{processes}-{run}"
    config = write_config(
        work / f"p{processes}-{run}.yaml",
        target_modules=TARGETS,
        max_steps=PARALLEL_STEPS,
        per_device_train_batch_size=GLOBAL_BATCH // processes,
        learning_rate=LEARNING_RATE,
        max_length=PARALLEL_MAX_LENGTH,
        seed=SEED,
        save_strategy="no",
    )
    tuning = ["--config", str(config), "--data-dir", str(work / "data"), "--output-dir", str(out)]
    tuning += ["--model", str(model), "--metrics-port", "0"]
    launcher = ["--cpu", "--processes-per-node", str(processes), "--main-port", "0"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # one thread per process: a process stands for a device
        "GLOO_SOCKET_IFNAME": "lo",
        "KAITO_TERMINATION_LOG": str(work / "termination-log"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    subprocess.run(
        [sys.executable, "-m", "kaito_runtime.launch", "tuning", *launcher, "--", *tuning],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=1800,
    )
    metadata = json.loads((out / "kaito_tuning_metadata.json").read_text())
    if metadata["processes"] != processes:
        raise RuntimeError(f"expected {processes} processes, the run had {metadata['processes']}")
    return float(metadata["train_tokens"]) / float(metadata["train_runtime_seconds"])


def _parallel_line(work: Path) -> str:
    from tests.support.tiny_model import build_tiny_model

    model = build_tiny_model(
        work / "model", hidden_size=256, num_heads=4, num_layers=4, intermediate_size=1024
    )
    _dataset(work)
    two, one = _median_pair(
        lambda run: _launched(model, work, 2, run), lambda run: _launched(model, work, 1, run)
    )
    return (
        f"tuning_two_processes: ours={two:.0f} tok/s baseline[one process]={one:.0f} tok/s "
        f"ratio={two / one:.2f}"
    )


def _adapter(directory: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    gen = torch.Generator().manual_seed(seed)
    rows = ADAPTER_MIB * 1024 * 1024 // 4 // 4096
    tensors = {
        f"base_model.model.layers.{i}.lora_A.weight": torch.randn(rows // 8, 4096, generator=gen)
        for i in range(8)
    }
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 64}))
    return directory


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def _copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in source.iterdir():
        with path.open("rb") as src, (target / path.name).open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _adapter_lines(work: Path) -> list[str]:
    from tests.support.registry import run_registry

    from kaito_runtime.oci import pull_adapter, push_adapter

    push_rates, pull_rates, copy_rates = [], [], []
    with run_registry(work / "registry") as registry:
        for run in range(-1, RUNS):  # run -1 warms up
            adapter = _adapter(work / f"adapter-{run + 1}", SEED + run + 1)
            mib = _size(adapter) / (1024 * 1024)
            image = f"{registry.host}/bench/adapter-{run + 1}:1"  # a fresh repository: no dedup
            push = _timed(lambda a=adapter, i=image: push_adapter(a, i))
            pull = _timed(lambda i=image, r=run: pull_adapter(i, work / f"pulled-{r + 1}"))
            copy = _timed(lambda a=adapter, r=run: _copy(a, work / f"copied-{r + 1}"))
            if run >= 0:
                push_rates.append(mib / push)
                pull_rates.append(mib / pull)
                copy_rates.append(mib / copy)
    push_mb, pull_mb, copy_mb = (statistics.median(r) for r in (push_rates, pull_rates, copy_rates))
    baseline = f"baseline[copy the same {ADAPTER_MIB} MiB on disk, fsync]={copy_mb:.0f} MiB/s"
    return [
        f"adapter_push_mb_per_s: ours={push_mb:.0f} MiB/s {baseline} ratio={push_mb / copy_mb:.2f}",
        f"adapter_pull_mb_per_s: ours={pull_mb:.0f} MiB/s {baseline} ratio={pull_mb / copy_mb:.2f}",
    ]


def run() -> list[str]:
    """Run the benchmarks and return their result lines.

    Torch uses one thread: on a shared 2-core machine that is both faster and far steadier for
    a model this small, and it applies to both sides alike.
    """
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="kaito-bench-tuning-") as scratch:
        work = Path(scratch)
        lines = [_training_line(work / "train")]
        lines.append(_parallel_line(work / "parallel"))
        lines += _adapter_lines(work / "adapters")
    return lines
