"""End to end: N custom objects, each reconciled with one status patch, through an API server.

The server is ``kaito.cluster``'s in-process API server (``Controllers.api_only()``, a small
``Widget`` CRD with a status subresource), run in a process of its own so that it does not
share a GIL with the clients, as a real cluster would not. Each run gets a fresh server.
Three contenders, each in its own process, one after another:

- ours: a ``kaito.engine`` Manager (an informer, a work queue, 10 workers, one status PATCH per
  object);
- kopf: the same operator written with kopf (``@kopf.on.create`` setting ``status``; event
  posting off). kopf also records the handled state in an annotation, so it sends two PATCHes
  per object (the object and its status); that is how a kopf operator is written;
- bare: no framework: LIST, then one status PATCH per object, 10 at a time.

Two figures per size, all timed by the driver's own watch up to the last status written:

- ``e2e_N_objects`` (ours and kopf) and ``e2e_N_objects_floor`` (ours and bare): from the first
  create to the last status. Creates go 20 at a time. The operators are running and have
  reconciled a warm-up object first; the bare loop LISTs once the last create has returned,
  so it cannot overlap its patches with the creates as an operator does.
- ``e2e_N_backlog``: N objects exist before the contender starts; from the moment its client is
  built (imports done) to the last status: what a restarted operator does.

``BENCH_E2E_SIZES`` (default ``1000,10000``) and ``BENCH_E2E_RUNS`` (default 3; the median is
printed) tune the run; ``KOPF_PYTHON`` names an interpreter that has kopf if this one lacks it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

GROUP, VERSION, PLURAL, KIND = "example.com", "v1", "widgets", "Widget"
NAMESPACE = "bench"
SIZES = (1_000, 10_000)
RUNS = 3
WORKERS = 10
CREATE_CONCURRENCY = 20
ROOT = Path(__file__).resolve().parent.parent

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": KIND, "plural": PLURAL, "singular": "widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer"},
                                    "image": {"type": "string"},
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _quiet() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


# -- processes ----------------------------------------------------------------------------


def serve(url_file: str) -> None:
    """Run ``kaito.cluster``'s API server until killed; write its URL to ``url_file``."""
    import anyio

    from kaito.cluster import Controllers, start_cluster

    _quiet()

    async def main() -> None:
        async with start_cluster(
            controllers=Controllers.api_only(), crds=[CRD], history_window=50_000
        ) as cluster:
            await cluster.create_namespace(NAMESPACE)
            Path(url_file).write_text(cluster.url)  # noqa: ASYNC240 - once, tiny
            await anyio.sleep_forever()

    anyio.run(main)


def operator(url: str) -> None:
    """Run our operator: print ``start <monotonic>`` when its client is built, then run."""
    import anyio
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kaito.engine import KubeClient, Manager, ObjectKey, Resource, Result

    _quiet()
    widgets = Resource(GROUP, VERSION, PLURAL, KIND)

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

        manager.add_controller("widgets", reconcile, workers=WORKERS).watch(informer)
        print(f"start {time.monotonic()}", flush=True)
        await manager.run_until_signalled()
        await client.close()

    anyio.run(main)


KOPF_OPERATOR = textwrap.dedent(
    f"""
    import logging
    import time
    import kopf

    @kopf.on.startup()
    def configure(settings, **_):
        settings.posting.enabled = False
        settings.posting.level = logging.CRITICAL
        print(f"start {{time.monotonic()}}", flush=True)

    @kopf.on.create("{GROUP}", "{VERSION}", "{PLURAL}")
    def reconcile(patch, **_):
        patch.status["reconciled"] = True
    """
)


def bare(url: str, n: int) -> None:
    """Print ``start <monotonic>``, wait for a line on stdin, then LIST and PATCH every object's
    status, 10 at a time."""
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kaito.engine import KubeClient, ObjectKey, Resource

    widgets = Resource(GROUP, VERSION, PLURAL, KIND)

    async def main() -> None:
        client = KubeClient(ApiClient(Configuration(host=url)))
        print(f"start {time.monotonic()}", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the driver says go
        page = await client.list(widgets, namespace=NAMESPACE)
        gate = asyncio.Semaphore(WORKERS)

        async def one(obj: dict[str, Any]) -> None:
            async with gate:
                await client.patch_status(widgets, ObjectKey.of(obj), {"reconciled": True})

        await asyncio.gather(*(one(o) for o in page.items if o["metadata"]["name"] != "warmup"))
        if len(page.items) < n:
            raise RuntimeError(f"the bare loop listed {len(page.items)} objects, expected {n}")
        await client.close()

    asyncio.run(main())


# -- driver -------------------------------------------------------------------------------


def _start_server(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    url_file = os.path.join(tmp, "url")
    if os.path.exists(url_file):
        os.unlink(url_file)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_engine_e2e", "serve", url_file], env=_env()
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(url_file) and (url := Path(url_file).read_text()):
            return proc, url
        if proc.poll() is not None:
            raise RuntimeError(f"the benchmark API server exited with {proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the benchmark API server did not start within 60 s")


def _collection(url: str) -> str:
    return f"{url}/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"


def _body(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "e2e"}},
            "spec": {"size": 3, "image": "registry.example.com/widgets/server:1.2.3"},
        }
    ).encode()


async def _create_all(session: aiohttp.ClientSession, url: str, names: list[str]) -> None:
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    headers = {"Content-Type": "application/json"}

    async def one(name: str) -> None:
        async with gate, session.post(_collection(url), data=_body(name), headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"create {name}: {r.status} {await r.text()}")
            await r.read()

    await asyncio.gather(*(one(n) for n in names))


class _Statuses:
    """The driver's watch: notes when each wanted object's status is first seen reconciled."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.done: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def follow(self, session: aiohttp.ClientSession, url: str, rv: str) -> None:
        params = {"watch": "true", "resourceVersion": rv}
        timeout = aiohttp.ClientTimeout(total=None)
        async with session.get(_collection(url), params=params, timeout=timeout) as resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                now = time.monotonic()
                for line in lines:
                    obj = json.loads(line)["object"]
                    name = obj["metadata"]["name"]
                    if name in self.wanted and name not in self.done and obj.get("status"):
                        self.done[name] = now
                        self.changed.set()

    async def wait_for(self, names: set[str], within: float) -> float:
        """Wait until every name in ``names`` is reconciled; return the last one's time."""
        async with asyncio.timeout(within):
            while not names <= self.done.keys():
                self.changed.clear()
                await self.changed.wait()
        return max(self.done[n] for n in names)


def _spawn(kind: str, url: str, n: int, tmp: str) -> subprocess.Popen[str]:
    env = _env()
    if kind == "ours":
        cmd = [sys.executable, "-m", "benchmarks.bench_engine_e2e", "operator", url]
    elif kind == "bare":
        cmd = [sys.executable, "-m", "benchmarks.bench_engine_e2e", "bare", url, str(n)]
    else:
        script = os.path.join(tmp, "kopf_operator.py")
        Path(script).write_text(KOPF_OPERATOR)
        env["KUBECONFIG"] = _kubeconfig(tmp, url)
        cmd = [
            _kopf_python(), "-m", "kopf", "run", "--standalone", "--namespace", NAMESPACE,
            "--log-format=plain", "-q", script,
        ]  # fmt: skip
    stdin = subprocess.PIPE if kind == "bare" else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE, text=True)


def _go(proc: subprocess.Popen[str]) -> float:
    """Tell the bare loop to start; return when."""
    assert proc.stdin is not None
    now = time.monotonic()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return now


async def _started(proc: subprocess.Popen[str]) -> float:
    """Read the contender's ``start <monotonic>`` line, then keep draining its output."""
    out = proc.stdout
    assert out is not None
    line = await asyncio.wait_for(asyncio.to_thread(out.readline), 120)
    if not line.startswith("start "):
        raise RuntimeError(f"the contender exited or printed {line!r} instead of its start")
    # A full pipe would stall the contender on its next log line; nothing more is needed.
    threading.Thread(target=out.read, daemon=True).start()
    return float(line.split()[1])


async def _run(kind: str, n: int, tmp: str, *, backlog: bool) -> float:
    """One run against a fresh server: seconds from the start (see the module doc) to the end."""
    server, url = _start_server(tmp)
    proc: subprocess.Popen[str] | None = None
    names = [f"w-{i:05d}" for i in range(n)]
    statuses = _Statuses({"warmup", *names})
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CREATE_CONCURRENCY + 2)
        ) as session:
            async with session.get(_collection(url)) as resp:
                rv = (await resp.json())["metadata"]["resourceVersion"]
            watcher = asyncio.create_task(statuses.follow(session, url, rv))
            limit = 120 + n / 20
            if backlog:
                await _create_all(session, url, ["warmup", *names])
                proc = _spawn(kind, url, n, tmp)
                start = await _started(proc)
                if kind == "bare":
                    start = _go(proc)
            elif kind == "bare":
                proc = _spawn(kind, url, n, tmp)
                await _started(proc)
                start = time.monotonic()
                await _create_all(session, url, names)
                _go(proc)
            else:
                proc = _spawn(kind, url, n, tmp)
                await _started(proc)
                await _create_all(session, url, ["warmup"])
                await statuses.wait_for({"warmup"}, 120)
                start = time.monotonic()
                await _create_all(session, url, names)
            end = await statuses.wait_for(set(names), limit)
            watcher.cancel()
            return end - start
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
                "users": [{"name": "bench", "user": {}}],
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


def _rate(kind: str, n: int, tmp: str, runs: int, *, backlog: bool = False) -> float:
    """The median objects/s of ``runs`` runs."""
    return statistics.median(
        n / asyncio.run(_run(kind, n, tmp, backlog=backlog)) for _ in range(runs)
    )


def _line(name: str, ours: float, what: str, theirs: float, note: str = "") -> str:
    tail = f" {note}" if note else ""
    return (
        f"{name}: ours={ours:.0f} objects/s baseline[{what}]={theirs:.0f} objects/s "
        f"ratio={ours / theirs:.2f}x{tail}"
    )


def run() -> list[str]:
    """Measure and return the result lines."""
    sizes = [int(s) for s in os.environ.get("BENCH_E2E_SIZES", "1000,10000").split(",")]
    runs = int(os.environ.get("BENCH_E2E_RUNS", str(RUNS)))
    kopf = _have_kopf()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run("ours", 100, tmp, backlog=False))  # warm-up: imports, page cache
        for n in sizes:
            ours = _rate("ours", n, tmp, runs)
            floor = _rate("bare", n, tmp, runs)
            if kopf:
                theirs = _rate("kopf", n, tmp, runs)
                lines.append(
                    _line(f"e2e_{n}_objects", ours, "kopf", theirs, "(target >= 5x at 10000)")
                )
            else:
                lines.append(f"e2e_{n}_objects: kopf is not installed here; run nox -s bench")
            floor_name = f"e2e_{n}_objects_floor"
            lines.append(
                _line(floor_name, ours, "bare LIST+PATCH loop", floor, "(target >= 0.5x at 10000)")
            )
            ours_backlog = _rate("ours", n, tmp, runs, backlog=True)
            bare_backlog = _rate("bare", n, tmp, runs, backlog=True)
            lines.append(
                _line(f"e2e_{n}_backlog", ours_backlog, "bare LIST+PATCH loop", bare_backlog)
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
