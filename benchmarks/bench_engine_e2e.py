"""End to end: N custom objects, each reconciled with one status patch, through an API server.

Three contenders run, one after another, each against a fresh server in its own process:

- ours: a ``kaito.engine`` Manager (informer + queue + 10 workers + a status PATCH each);
- kopf: the same operator written with kopf (run only if kopf is importable; the nox ``bench``
  session installs it), with event posting turned off;
- bare: no framework: LIST, then one status PATCH per object, 10 at a time (the floor).

ours and kopf are timed from the first create to the last status written (seen by a watch
the driver holds open); creates go 20 at a time. bare is timed from its LIST to its last PATCH,
with the objects created beforehand. The server runs in its own process; for now it is the
engine tests' HTTP fake (``tests/engine/fakeserver.py``), to be replaced by ``kaito.testing``'s
in-process API server in :func:`serve` once that package lands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp

GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"
NAMESPACE = "bench"
SIZES = (1_000, 10_000)
ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


# -- processes ----------------------------------------------------------------------------


def serve(port_file: str) -> None:
    """Run the API server until killed; write its URL to ``port_file``."""
    from aiohttp import web
    from tests.engine.fakekube import FakeKube
    from tests.engine.fakeserver import FakeServer

    from kaito.engine import Resource

    widgets = Resource(GROUP, VERSION, PLURAL, "Widget")
    kube = FakeKube(widgets, history=1000)

    async def main() -> None:
        runner = web.AppRunner(FakeServer(kube).app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        Path(port_file).write_text(f"http://127.0.0.1:{port}")  # noqa: ASYNC240 - once, tiny
        await asyncio.Event().wait()

    asyncio.run(main())


def operator(url: str) -> None:
    """Run our operator; print ``ready`` once its cache has synced."""
    import anyio
    import structlog
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kaito.engine import KubeClient, Manager, ObjectKey, Resource, Result

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    widgets = Resource(GROUP, VERSION, PLURAL, "Widget")

    async def main() -> None:
        client = KubeClient(ApiClient(Configuration(host=url)))
        manager = Manager(client, graceful_shutdown=1)
        informer = manager.informer(widgets, namespace=NAMESPACE)

        async def reconcile(key: ObjectKey) -> Result:
            obj = informer.store.get(key)
            if obj is None or (obj.get("status") or {}).get("reconciled"):
                return Result()
            await client.patch_status(widgets, key, {"reconciled": True})
            return Result()

        manager.add_controller("widgets", reconcile, workers=10).watch(informer)

        async def announce() -> None:
            await informer.wait_synced()
            print("ready", flush=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(announce)
            await manager.run_until_signalled()
            tg.cancel_scope.cancel()
        await client.close()

    anyio.run(main)


KOPF_OPERATOR = textwrap.dedent(
    f"""
    import logging
    import kopf

    @kopf.on.startup()
    def configure(settings, **_):
        settings.posting.enabled = False
        settings.posting.level = logging.CRITICAL

    @kopf.on.create("{GROUP}", "{VERSION}", "{PLURAL}")
    def reconcile(patch, **_):
        patch.status["reconciled"] = True
    """
)


def bare(url: str, n: int) -> None:
    """LIST, then PATCH every object's status 10 at a time; print the elapsed seconds."""
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kaito.engine import KubeClient, ObjectKey, Resource

    widgets = Resource(GROUP, VERSION, PLURAL, "Widget")

    async def main() -> None:
        client = KubeClient(ApiClient(Configuration(host=url)))
        start = time.perf_counter()
        page = await client.list(widgets, namespace=NAMESPACE)
        sem = asyncio.Semaphore(10)

        async def one(obj: dict[str, Any]) -> None:
            async with sem:
                await client.patch_status(widgets, ObjectKey.of(obj), {"reconciled": True})

        await asyncio.gather(*(one(o) for o in page.items))
        elapsed = time.perf_counter() - start
        assert len(page.items) == n, len(page.items)
        print(f"{elapsed:.6f}", flush=True)
        await client.close()

    asyncio.run(main())


# -- driver -------------------------------------------------------------------------------


def _start_server(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = os.path.join(tmp, "url")
    if os.path.exists(port_file):
        os.unlink(port_file)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_engine_e2e", "serve", port_file], env=_env()
    )
    for _ in range(600):
        if os.path.exists(port_file) and Path(port_file).read_text():
            return proc, Path(port_file).read_text()
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the benchmark API server did not start within 30 s")


def _collection(url: str) -> str:
    return f"{url}/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"


def _body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "e2e"}},
        "spec": {"size": 3, "image": "registry.example.com/widgets/server:1.2.3"},
    }


async def _create_all(session: aiohttp.ClientSession, url: str, names: list[str]) -> None:
    sem = asyncio.Semaphore(20)

    async def one(name: str) -> None:
        async with sem, session.post(_collection(url), json=_body(name)) as resp:
            if resp.status != 201:
                raise RuntimeError(f"create {name}: {resp.status} {await resp.text()}")

    await asyncio.gather(*(one(n) for n in names))


async def _drive(url: str, names: list[str], warmup: str) -> float:
    """Create a warm-up object, wait for it, then create ``names``; time to the last status."""
    wanted = set(names) | {warmup}
    done: set[str] = set()
    warm = asyncio.Event()
    finished = asyncio.Event()
    last_status = 0.0
    async with aiohttp.ClientSession() as session:

        async def watch() -> None:
            nonlocal last_status
            params = {"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": "1"}
            async with session.get(
                _collection(url), params=params, timeout=aiohttp.ClientTimeout(total=None)
            ) as resp:
                async for line in resp.content:
                    event = json.loads(line)
                    obj = event["object"]
                    name = obj.get("metadata", {}).get("name")
                    if name in wanted and (obj.get("status") or {}).get("reconciled"):
                        if name == warmup:
                            warm.set()
                        elif name not in done:
                            done.add(name)
                            last_status = time.perf_counter()
                            if len(done) == len(names):
                                finished.set()
                                return

        watcher = asyncio.ensure_future(watch())
        await _create_all(session, url, [warmup])
        await asyncio.wait_for(warm.wait(), 120)
        start = time.perf_counter()
        await _create_all(session, url, names)
        await asyncio.wait_for(finished.wait(), 900)
        watcher.cancel()
        return last_status - start


def _run_contender(kind: str, n: int, tmp: str) -> float:
    server, url = _start_server(tmp)
    op: subprocess.Popen[str] | None = None
    try:
        names = [f"w-{i:05d}" for i in range(n)]
        if kind == "bare":

            async def prepare() -> None:
                async with aiohttp.ClientSession() as session:
                    await _create_all(session, url, names)

            asyncio.run(prepare())
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_engine_e2e", "bare", url, str(n)],
                env=_env(), capture_output=True, text=True, check=True, timeout=900,
            )  # fmt: skip
            return float(out.stdout.strip().splitlines()[-1])
        if kind == "ours":
            cmd = [sys.executable, "-m", "benchmarks.bench_engine_e2e", "operator", url]
        else:
            kubeconfig = _kubeconfig(tmp, url)
            script = os.path.join(tmp, "kopf_operator.py")
            Path(script).write_text(KOPF_OPERATOR)
            cmd = [
                _kopf_python(), "-m", "kopf", "run", "--standalone", "--namespace", NAMESPACE,
                "--log-format=plain", "-q", script,
            ]  # fmt: skip
            os.environ["KUBECONFIG"] = kubeconfig
        op = subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        return asyncio.run(_drive(url, names, "warmup"))
    finally:
        if op is not None:
            op.terminate()
            try:
                op.wait(10)
            except subprocess.TimeoutExpired:
                op.kill()
        server.kill()
        server.wait()


def _kubeconfig(tmp: str, url: str) -> str:
    path = os.path.join(tmp, "kubeconfig")
    Path(path).write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "bench", "cluster": {"server": url}}],
                "users": [{"name": "bench", "user": {"token": "bench"}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
                "current-context": "bench",
            }
        )
    )
    return path


def _kopf_python() -> str:
    return os.environ.get("KOPF_PYTHON", sys.executable)


def _have_kopf() -> bool:
    probe = subprocess.run([_kopf_python(), "-c", "import kopf"], capture_output=True, check=False)
    return probe.returncode == 0


def run() -> list[str]:
    lines: list[str] = []
    sizes = tuple(
        int(s) for s in os.environ.get("BENCH_E2E_SIZES", ",".join(map(str, SIZES))).split(",")
    )
    kopf = _have_kopf()
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            ours = n / _run_contender("ours", n, tmp)
            floor = n / _run_contender("bare", n, tmp)
            if kopf:
                theirs = n / _run_contender("kopf", n, tmp)
                lines.append(
                    f"e2e_{n}_objects: ours={ours:.0f} objects/s "
                    f"baseline[kopf]={theirs:.0f} objects/s "
                    f"ratio={ours / theirs:.2f}x (target >= 5x at 10000)"
                )
            else:
                lines.append(
                    f"e2e_{n}_objects: kopf is not installed here; run it with nox -s bench"
                )
            lines.append(
                f"e2e_{n}_objects_floor: ours={ours:.0f} objects/s "
                f"baseline[bare LIST+PATCH loop]={floor:.0f} objects/s "
                f"ratio={ours / floor:.2f}x (target >= 0.5x at 10000)"
            )
    return lines


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "serve":
        serve(sys.argv[2])
    elif role == "operator":
        operator(sys.argv[2])
    elif role == "bare":
        bare(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown role {role!r}; use serve, operator or bare")
