"""Inference fixtures: adapter directories, a loaded transformers engine, and a real server.

The real server is ``python -m kaito_runtime.inference`` in a subprocess on a loopback port
(one per session): the openai client and the burst test talk to it over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

SERVED_NAME = "phi-3-mini-4k-instruct"
ADAPTER_NAME = "phi-adapter"
SERVER_CONCURRENCY = 8
# Short enough that a test sees a trickling client cut off, long enough for any real client.
SERVER_BODY_READ_TIMEOUT = 4.0


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def adapters_dir(lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``/mnt/adapter`` as the init containers leave it: one adapter directory."""
    root = tmp_path_factory.mktemp("mnt-adapter")
    shutil.copytree(lora_adapter, root / ADAPTER_NAME)
    (root / "not-an-adapter").mkdir()
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.frozen
class RunningServer:
    """A server subprocess: its base URL, process, and the first /health status it answered.

    It logs JSON lines to ``log_path``; :meth:`events` reads them back.
    """

    base_url: str
    process: subprocess.Popen[bytes]
    first_health_status: int
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0

    def events(self, name: str) -> list[dict[str, Any]]:
        """Return the server's log events called ``name``, oldest first."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> int:
    first: int | None = None
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                status = client.get(f"{url}/health").status_code
            except httpx.TransportError:
                time.sleep(0.1)  # not bound yet: the interpreter is still starting
                continue
            first = status if first is None else first
            if status == 200:
                return first
            time.sleep(0.1)
    raise TimeoutError(f"server not healthy in time:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(
    tiny_model: Path, adapters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """``python -m kaito_runtime.inference`` serving the tiny model with one adapter."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        ADAPTER_NAME: "1.0",
        "KAITO_TERMINATION_LOG": str(log.parent / "termination-log"),
        "KAITO_LOG_FORMAT": "json",
        # One thread for a model this small: no OpenMP spinning against the test client's CPU.
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "kaito_runtime.inference",
        "--model", str(tiny_model),
        "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--adapters-dir", str(adapters_dir),
        "--backend", "transformers",
        "--max-concurrent-requests", str(SERVER_CONCURRENCY),
        "--body-read-timeout", str(SERVER_BODY_READ_TIMEOUT),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        first = _wait_healthy(url, proc, log, time.monotonic() + 240)
        yield RunningServer(
            base_url=url, process=proc, first_health_status=first, log_path=log, port=port
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
