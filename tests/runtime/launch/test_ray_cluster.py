"""A real two-node Ray cluster formed by the launcher, on two loopback addresses (``nox -s
multinode``).

Two ``python -m kaito_runtime.launch ray`` processes play pod 0 (``POD_INDEX=0``: the Ray head,
then the server) and pod 1 (a Ray node joining ``<leader>:<port>``). The "server" is a stand-in
for vLLM (which refuses Ray on CPU: "current platform cpu does not support ray"): it connects to
the cluster as vLLM's Ray executor would and runs a task on each node. Then the exec probes are
run as the kubelet would, a worker pod is stopped (the leader's liveness fails), and the leader
is stopped; every process the launchers started must be gone. Serving vLLM itself across the two
nodes needs GPUs: ``test_ray_vllm_gpu.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.runtime.tuning.processes import events, module_env, spawn

if os.environ.get("KAITO_REQUIRE_RAY") != "1":
    pytest.importorskip("ray")

pytestmark = pytest.mark.multinode

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_start_args(temp_dir: Path, worker_ports: tuple[int, int], *, head: bool) -> str:
    args = [
        "--num-cpus=1",
        "--num-gpus=0",
        "--object-store-memory=100000000",
        f"--min-worker-port={worker_ports[0]}",
        f"--max-worker-port={worker_ports[1]}",
        "--dashboard-agent-listen-port=0",
        f"--temp-dir={temp_dir}",
    ]
    if head:
        args.append("--include-dashboard=false")
    return " ".join(args)


def _probe(probe: str, pod_index: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kaito_runtime.launch", "health", probe]
    command += ["--leader-address", HEAD_IP, *extra]
    return subprocess.run(
        command,
        env=module_env(POD_INDEX=pod_index),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _tree(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _running(pids: set[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return sorted(alive)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Ray's socket paths must fit AF_UNIX's 107 bytes: pytest's tmp_path is too deep."""
    with tempfile.TemporaryDirectory(prefix="kr-") as path:
        yield Path(path)


def test_the_launcher_forms_a_two_node_cluster_and_owns_its_processes(short_tmp: Path) -> None:
    gcs_port, http_port = _free_port(), _free_port()
    common = ["ray", "--nodes", "2", "--leader-address", HEAD_IP, "--ray-port", str(gcs_port)]
    common += ["--join-timeout", "180"]
    server = [sys.executable, "-m", "tests.runtime.launch.ray_probe_server"]
    head_args = _ray_start_args(short_tmp / "h", (30000, 30499), head=True)
    worker_args = _ray_start_args(short_tmp / "w", (30500, 30999), head=False)
    leader_command = [*common, "--node-ip", HEAD_IP, "--ray-start-args", head_args]
    leader_command += ["--", *server, HEAD_IP, str(http_port)]
    leader = spawn(
        "kaito_runtime.launch",
        leader_command,
        POD_INDEX="0",
        KAITO_TERMINATION_LOG=str(short_tmp / "leader-termination"),
    )
    worker = spawn(
        "kaito_runtime.launch",
        [*common, "--node-ip", WORKER_IP, "--ray-start-args", worker_args],
        POD_INDEX="1",
        KAITO_TERMINATION_LOG=str(short_tmp / "worker-termination"),
    )
    started: set[int] = set()
    try:
        with ThreadPoolExecutor(1) as pool:
            assert worker.stderr is not None and leader.stderr is not None
            worker_events = pool.submit(lambda: list(events(worker.stderr)))  # type: ignore[arg-type]
            leader_events: list[dict[str, Any]] = []
            for event in events(leader.stderr):
                leader_events.append(event)
                if event["event"] == "test_server_ready":
                    break
            assert leader_events[-1]["event"] == "test_server_ready", leader_events[-5:]

            # The cluster: both nodes took a task, and the leader said when it was complete.
            assert leader_events[-1]["ran_on"] == [HEAD_IP, WORKER_IP]
            ready = [e for e in leader_events if e["event"] == "ray_cluster_ready"]
            assert [sorted(e["addresses"]) for e in ready] == [[HEAD_IP, WORKER_IP]]
            started = _tree(leader.pid) | _tree(worker.pid)
            assert len(started) > 6  # ray start, GCS, raylets, agents, server, Ray workers

            # The exec probes, as the kubelet runs them on each pod.
            ready_leader = _probe("readiness", "0", "--server-port", str(http_port))
            assert ready_leader.returncode == 0, ready_leader.stdout
            assert "answered 200" in ready_leader.stdout
            assert _probe("readiness", "1", "--server-port", str(http_port)).returncode == 0
            live = _probe("liveness", "0", "--ray-port", str(gcs_port), "--nodes", "2")
            assert live.returncode == 0, live.stdout
            assert live.stdout.strip() == f"2 Ray nodes alive ({HEAD_IP}, {WORKER_IP})"

            # Pod 1 goes away: its node leaves, and the leader's liveness probe fails.
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=120) == 128 + signal.SIGTERM
            seen = worker_events.result(timeout=60)
            assert [e["node_ip"] for e in seen if e["event"] == "ray_node_joined"] == [WORKER_IP]
            dead = _probe("liveness", "0", "--ray-port", str(gcs_port), "--nodes", "2")
            assert dead.returncode == 1
            assert dead.stdout.startswith(f"1 of 2 Ray nodes alive ({HEAD_IP})"), dead.stdout
            assert _probe("liveness", "1", "--ray-port", str(gcs_port)).returncode == 0

            # Pod 0 is deleted: the server, then the head, stop.
            leader.send_signal(signal.SIGTERM)
            assert leader.wait(timeout=120) == 128 + signal.SIGTERM
            rest = list(events(leader.stderr))
            stopped = [e["child"] for e in rest if e["event"] == "child_stopped"]
            assert stopped == ["server", "ray-head"]
        assert _running(started) == []
    finally:
        for proc in (worker, leader):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for pid in _running(started):  # never leave Ray behind, even when an assertion failed
            os.kill(pid, signal.SIGKILL)


def test_a_leader_without_workers_gives_up_with_the_reason(short_tmp: Path) -> None:
    gcs_port = _free_port()
    command = ["ray", "--nodes", "2", "--leader-address", HEAD_IP, "--node-ip", HEAD_IP]
    command += ["--ray-port", str(gcs_port), "--join-timeout", "1"]
    command += ["--ray-start-args", _ray_start_args(short_tmp / "h", (30000, 30499), head=True)]
    command += ["--", sys.executable, "-c", "raise SystemExit('the server must not start')"]
    leader = spawn(
        "kaito_runtime.launch",
        command,
        POD_INDEX="0",
        KAITO_TERMINATION_LOG=str(short_tmp / "termination"),
    )
    started: set[int] = set()
    try:
        assert leader.stderr is not None
        seen = []
        for event in events(leader.stderr):
            seen.append(event)
            if event["event"] in ("child_started", "ray_cluster_waiting"):
                started |= _tree(leader.pid)
        assert leader.wait(timeout=120) == 1
        message = (short_tmp / "termination").read_text()
        # The head may not even be up after one second: none or only itself has joined.
        assert re.match(r"launch failed: [01] of 2 Ray nodes joined within 1s \(joined: ", message)
        assert "check the worker pods' logs" in message
        assert [e["child"] for e in seen if e["event"] == "child_started"] == ["ray-head"]
        assert _running(started | _tree(leader.pid)) == []
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
