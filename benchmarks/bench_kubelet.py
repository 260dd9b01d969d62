"""The local kubelet: how long a Pod takes from create until its program runs (its first log
line is readable), and how many Pods start per second, against starting the same sandboxed
program by hand.

``kubelet_pod_start`` is the median over sequential Pods (create, schedule, IP, ``/etc/hosts``,
image, environment, sandbox, spawn, the program writes a line, the kubelet logs it) against the
median time to spawn the identical bubblewrap command running ``echo up`` and see it exit.
``kubelet_pods_per_second`` creates N Pods at once and waits for every first line, against N such
spawns at once. Everything runs in this process, so the figures include the API server's work.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

SEQUENTIAL = 15
CONCURRENT = 30


def _pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo up; sleep 1000"]}
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }


def _measure() -> dict[str, object]:
    import anyio
    import structlog

    from kaito.cluster import LocalKubelet, LogOptions, StatusError, start_cluster
    from kaito.cluster._kubelet._sandbox import LaunchSpec

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results: dict[str, object] = {}

    async def wait_running(kubelet: LocalKubelet, names: list[str]) -> None:
        async def first_line(name: str) -> None:
            while True:
                try:
                    stream = kubelet.read_logs("default", name, LogOptions(follow=True))
                except StatusError:
                    await anyio.sleep(0.002)
                    continue
                async for chunk in stream:
                    if b"up" in chunk:
                        return

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(first_line, name)

    async def main() -> None:
        with tempfile.TemporaryDirectory() as root:
            async with (
                LocalKubelet(root=Path(root) / "kubelet") as kubelet,
                start_cluster(kubelet=kubelet, system_node=True) as cluster,
            ):
                sequential = []
                for i in range(SEQUENTIAL):
                    started = time.perf_counter()
                    await cluster.client.create(_pod(f"seq-{i}"))
                    await wait_running(kubelet, [f"seq-{i}"])
                    sequential.append(time.perf_counter() - started)
                    await cluster.client.delete("v1", "Pod", f"seq-{i}", "default")
                    await kubelet.wait_stopped("default", f"seq-{i}")
                names = [f"par-{i}" for i in range(CONCURRENT)]
                started = time.perf_counter()
                for name in names:
                    await cluster.client.create(_pod(name))
                await wait_running(kubelet, names)
                results["burst"] = time.perf_counter() - started
                results["sequential"] = sequential
                results["sandbox"] = kubelet.sandbox.name
                spec = LaunchSpec(
                    argv=("sh", "-c", "echo up"),
                    env={"PATH": "/usr/bin:/bin"},
                    workdir="/",
                    mounts=(),
                    scratch=Path(root) / "baseline",
                    hostname="baseline",
                )
                argv = list(kubelet.sandbox.launch(spec).argv)
                results["baseline"] = [
                    await anyio.to_thread.run_sync(_spawn, argv) for _ in range(SEQUENTIAL)
                ]
                results["baseline_burst"] = await anyio.to_thread.run_sync(
                    _spawn_many, argv, CONCURRENT
                )

    anyio.run(main)
    return results


def _spawn(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def _spawn_many(argv: list[str], count: int) -> float:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    for process in processes:
        process.wait()
    return time.perf_counter() - started


def run() -> list[str]:
    results = _measure()
    sequential: list[float] = results["sequential"]  # type: ignore[assignment]
    baseline: list[float] = results["baseline"]  # type: ignore[assignment]
    burst: float = results["burst"]  # type: ignore[assignment]
    base_burst: float = results["baseline_burst"]  # type: ignore[assignment]
    sandbox = results["sandbox"]
    ours_ms = statistics.median(sequential) * 1000
    base_ms = statistics.median(baseline) * 1000
    return [
        f"kubelet_pod_start[{sandbox}]: ours={ours_ms:.1f} ms "
        f"baseline[spawn the same sandbox by hand]={base_ms:.1f} ms ratio={ours_ms / base_ms:.1f}x",
        f"kubelet_pods_per_second[{sandbox}, {CONCURRENT} at once]: "
        f"ours={CONCURRENT / burst:.1f} pods/s "
        f"baseline[{CONCURRENT} sandbox spawns at once]={CONCURRENT / base_burst:.1f} /s "
        f"ratio={(CONCURRENT / burst) / (CONCURRENT / base_burst):.2f}x",
    ]
