"""1,000 Workspaces applied at once reach ready with the fake provisioner at zero delay.

Prints the time from the first create to the last Workspace ready, the API requests the manager
made per Workspace, and the manager's peak memory, against a named baseline: a no-op engine
controller (one status PATCH per Workspace, nothing else) on the same in-process server. The
server runs in a child process (with its simulated scheduler, workload controllers and kubelet);
each contender runs in a child process of its own, so peak RSS is the contender's alone.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

N = 1000
WORKERS = int(__import__("os").environ.get("KAITO_BENCH_WORKERS", "5"))
BASELINE = "no-op engine controller, one status PATCH each"


def _serve(conn: Connection) -> None:
    import logging

    import anyio
    import structlog

    from kaito.api import workspace_crd
    from kaito.cluster import start_cluster

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def main() -> None:
        async with start_cluster(crds=[workspace_crd()], history_window=20 * N) as cluster:
            conn.send(cluster.url)
            await anyio.to_thread.run_sync(conn.recv)

    anyio.run(main)


def _workspace(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"apps": name}},
        },
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    }


class _Counting:
    """Counts every API call a contender makes (one call is one request)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("get", "list", "watch", "create", "replace", "patch", "patch_status", "delete"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.requests += 1
                return attr(*args, **kwargs)

            return counted
        return attr


def _write_kubeconfig(url: str, path: Path) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "b",
        "clusters": [{"name": "b", "cluster": {"server": url}}],
        "users": [{"name": "b", "user": {}}],
        "contexts": [{"name": "b", "context": {"cluster": "b", "user": "b"}}],
    }))  # fmt: skip


async def _contender(url: str, kind: str, n: int, kubeconfig: Path) -> dict[str, Any]:
    import anyio

    from kaito.controllers import WORKSPACES, add_workspace_controller
    from kaito.engine import Manager, ObjectKey, Resource, Result, load_client
    from kaito.operator import controller_settings
    from kaito.options import ManagerOptions
    from kaito_provisioners.fake import FakeProvisioner

    await anyio.to_thread.run_sync(_write_kubeconfig, url, kubeconfig)
    real = await load_client(str(kubeconfig))
    client = _Counting(real)
    namespace = f"bench-{kind}"
    await real.create(
        Resource("", "v1", "namespaces", "Namespace", namespaced=False),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    manager = Manager(client, name=f"bench-{kind}")  # type: ignore[arg-type]
    done = anyio.Event()
    ready: set[str] = set()
    if kind == "ours":
        add_workspace_controller(
            manager,
            client,
            FakeProvisioner(client),
            controller_settings(ManagerOptions()),  # type: ignore[arg-type]
        )
        informer = manager.informer(WORKSPACES)

        class Watch:
            needs_old = False

            def _check(self, obj: dict[str, Any]) -> None:
                if (obj.get("metadata") or {}).get("namespace") != namespace:
                    return
                if (obj.get("status") or {}).get("state") == "Ready":
                    ready.add(obj["metadata"]["name"])
                    if len(ready) == n:
                        done.set()

            def on_add(self, obj: dict[str, Any]) -> None:
                self._check(obj)

            def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
                self._check(new)

            def on_delete(self, obj: dict[str, Any]) -> None:
                pass

        informer.add_handler(Watch())
    else:
        informer = manager.informer(WORKSPACES)

        async def reconcile(key: ObjectKey) -> Result:
            obj = informer.store.get(key)
            if obj is None or (obj.get("status") or {}).get("state") == "Ready":
                return Result()
            await client.patch_status(WORKSPACES, key, {"state": "Ready"})
            ready.add(key.name)
            if len(ready) == n:
                done.set()
            return Result()

        manager.add_controller("noop", reconcile, workers=5).watch(informer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await manager.started.wait()
        await manager.informers.wait_synced()
        start = time.perf_counter()
        limiter = anyio.Semaphore(20)

        async def create(i: int) -> None:
            async with limiter:
                await real.create(WORKSPACES, _workspace(f"ws-{i}", namespace))

        async with anyio.create_task_group() as creators:
            for i in range(n):
                creators.start_soon(create, i)
        with anyio.fail_after(600):
            await done.wait()
        elapsed = time.perf_counter() - start
        manager.stop()
        tg.cancel_scope.cancel()
    await real.close()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "requests": client.requests, "rss_mib": rss_kib / 1024}


def _run_contender(url: str, kind: str, n: int) -> dict[str, Any]:
    code = (
        "import asyncio, json, sys, pathlib, tempfile, logging, structlog\n"
        "structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))\n"
        "from benchmarks.bench_workspaces import _contender\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        f"print(json.dumps(asyncio.run(_contender({url!r}, {kind!r}, {n}, d / 'kubeconfig'))))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
        timeout=900,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(n: int = N) -> list[str]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = parent.recv()
        ours = _run_contender(url, "ours", n)
        base = _run_contender(url, "noop", n)
    finally:
        parent.send("stop")
        server.join(timeout=30)
        if server.is_alive():
            server.kill()
    return [
        f"workspaces_{n}_ready: ours={ours['seconds']:.1f} s baseline[{BASELINE}]="
        f"{base['seconds']:.1f} s ratio={ours['seconds'] / base['seconds']:.2f}x "
        f"({n / ours['seconds']:.0f} workspaces/s)",
        f"api_requests_per_workspace: ours={ours['requests'] / n:.1f} "
        f"baseline[{BASELINE}]={base['requests'] / n:.1f} "
        f"ratio={ours['requests'] / max(base['requests'], 1):.1f}x",
        f"manager_peak_rss: ours={ours['rss_mib']:.0f} MiB baseline[{BASELINE}]="
        f"{base['rss_mib']:.0f} MiB ratio={ours['rss_mib'] / base['rss_mib']:.2f}x",
    ]


if __name__ == "__main__":
    for line in run(int(sys.argv[1]) if len(sys.argv) > 1 else N):
        print(line)
