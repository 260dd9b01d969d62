"""vLLM served across two Ray nodes with pipeline parallelism: the step only a GPU machine can run.

``pytest -m "gpu and multinode" tests/runtime/launch`` on a machine with CUDA vLLM, ``ray`` and at
least two GPUs. Two launchers play the StatefulSet's pods on one machine: pod 0 (the Ray head on
the machine's address, GPU 0) runs our server with ``--pipeline-parallel-size=2
--distributed-executor-backend=ray``, pod 1 (a Ray node on 127.0.0.2, GPU 1) joins it; each
pipeline stage then runs on its own node. On CPUs vLLM refuses this ("current platform cpu does
not support ray"), so ``test_ray_cluster.py`` stops where vLLM would start. Not run on this
project's CPU machines.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.runtime.tuning.processes import events, module_env, spawn

pytestmark = [pytest.mark.gpu, pytest.mark.multinode, pytest.mark.timeout(900)]

SERVED = "tiny-pp2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_gpus() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("vllm")
    pytest.importorskip("ray")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs (one per Ray node)")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kr-") as path:
        yield Path(path)


def test_vllm_serves_one_model_across_two_ray_nodes(
    two_gpus: None, tiny_model: Path, short_tmp: Path
) -> None:
    import openai

    gcs_port, http_port = _free_port(), _free_port()
    common = ["ray", "--nodes", "2", "--leader-address", "127.0.0.1"]
    common += ["--ray-port", str(gcs_port), "--join-timeout", "300"]
    ray_args = "--num-cpus=4 --num-gpus=1 --include-dashboard=false"
    server = [
        sys.executable, "-m", "kaito_runtime.inference",
        "--model", str(tiny_model), "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(http_port),
        "--backend", "vllm", "--dtype", "bfloat16", "--max-model-len", "512",
        "--gpu-memory-utilization", "0.3", "--adapters-dir", "",
        "--tensor-parallel-size=1", "--pipeline-parallel-size=2",
        "--distributed-executor-backend=ray",
    ]  # fmt: skip
    leader = spawn(
        "kaito_runtime.launch",
        [*common, "--ray-start-args", f"{ray_args} --temp-dir={short_tmp / 'h'}", "--", *server],
        POD_INDEX="0",
        CUDA_VISIBLE_DEVICES="0",
        HF_HUB_OFFLINE="1",
    )
    worker = spawn(
        "kaito_runtime.launch",
        [*common, "--node-ip", "127.0.0.2", "--ray-start-args", ray_args],
        POD_INDEX="1",
        CUDA_VISIBLE_DEVICES="1",
    )
    try:
        with ThreadPoolExecutor(1) as pool:
            assert leader.stderr is not None and worker.stderr is not None
            pool.submit(lambda: list(events(worker.stderr)))  # type: ignore[arg-type]
            seen = []
            for event in events(leader.stderr):  # the server's log comes through the launcher
                seen.append(event["event"])
                if event["event"] == "model_loaded":
                    break
            assert seen[-1:] == ["model_loaded"], seen[-10:]
            assert "ray_cluster_ready" in seen
            for probe, extra in (
                ("readiness", ["--server-port", str(http_port)]),
                ("liveness", ["--ray-port", str(gcs_port), "--nodes", "2"]),
            ):
                result = subprocess.run(
                    [sys.executable, "-m", "kaito_runtime.launch", "health", probe,
                     "--leader-address", "127.0.0.1", *extra],
                    env=module_env(POD_INDEX="0"), capture_output=True, text=True, check=False,
                )  # fmt: skip
                assert result.returncode == 0, (probe, result.stdout)

            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{http_port}/v1", api_key="x", max_retries=0
            )
            answer = client.completions.create(
                model=SERVED, prompt="the operator", max_tokens=8, temperature=0
            )
            assert answer.usage is not None and answer.usage.completion_tokens > 0

            leader.send_signal(signal.SIGTERM)
            assert leader.wait(timeout=120) == 128 + signal.SIGTERM
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=120) in (1, 128 + signal.SIGTERM)
            list(events(leader.stderr))
    finally:
        for proc in (worker, leader):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
