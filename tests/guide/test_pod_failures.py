"""Runtime Pods that fail for real on the local kubelet end in the Workspace condition a real
cluster gives: a command that exits non-zero, an image this machine cannot run, a server whose
probes never pass.

KAITO runs in process (``embedded_kaito``) with a local kubelet whose runtime image is a stand-in
interpreter written here (the controllers' ``python -m kaito_runtime.inference ...`` runs it), so
no model loads. The kubelet's clock runs fast, so probe periods and back-off pass in moments.
A runtime process killed from outside is restarted, and the Workspace says why until it is
ready again.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kaito.api.constants import ConditionType, Reason
from kaito.cluster import ImageTable, LocalKubelet
from kaito.embedded import Embedded, embedded_kaito
from kaito.options import FEATURE_GATES, ManagerOptions
from tests.guide._up import descendants

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

WORKSPACE: dict[str, Any] = {
    "apiVersion": "kaito.sh/v1beta1",
    "kind": "Workspace",
    "metadata": {"name": "phi-3", "namespace": "default"},
    "resource": {
        "instanceType": "Standard_NC6s_v3",
        "labelSelector": {"matchLabels": {"apps": "phi-3"}},
    },
    "inference": {"preset": {"name": "phi-3-mini-128k-instruct"}},
}


class FastClock:
    """The kubelet's clock, ``scale`` times faster than the wall: probe periods and back-off
    pass in moments (an injected clock, not a sleep in the test)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.scale

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0) / self.scale)


def _interpreter(tmp: Path, body: str) -> Path:
    """A runtime "interpreter": a shell script run for the container's ``python -m ...``; its
    ``python -c "import kaito_runtime"`` (the kubelet's check of the image) passes."""
    bin_dir = tmp / "env" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "python"
    script.write_text('#!/bin/sh\nif [ "$1" = -c ]; then exit 0; fi\n' + body)
    script.chmod(0o755)
    return script


async def _until(
    kaito: Embedded, reason: str, within: float = 60, containing: str = ""
) -> dict[str, Any]:
    """The InferenceReady condition once its reason is ``reason`` (and its message has
    ``containing``)."""
    last: dict[str, Any] = {}
    with anyio.move_on_after(within):
        while True:
            ws = await kaito.cluster.client.get("kaito.sh/v1beta1", "Workspace", "phi-3", "default")
            for cond in (ws.get("status") or {}).get("conditions") or []:
                if cond["type"] == ConditionType.INFERENCE_READY:
                    last = cond
            if last.get("reason") == reason and containing in last.get("message", ""):
                assert last["status"] == "False"
                return last
            await anyio.sleep(0.2)
    raise AssertionError(f"InferenceReady is not {reason} after {within}s: {last}")


def _kaito(tmp: Path, python: Path, *, runtime_image: str | None = None, scale: float = 1.0) -> Any:
    options = ManagerOptions(
        metrics_address=None,
        probe_address=None,
        feature_gates={**FEATURE_GATES, "vLLM": False},
        runtime_image=runtime_image,
    )
    kubelet = LocalKubelet(
        root=tmp / "kubelet",
        images=ImageTable(python=str(python)),
        clock=FastClock(scale),
        sandbox="host",
    )
    return embedded_kaito(options=options, kubelet=kubelet, system_node=True)


@pytest.fixture
async def crashing(tmp_path: Path) -> AsyncIterator[Embedded]:
    python = _interpreter(
        tmp_path,
        'echo "cannot load the model: weights are corrupt" > "$KAITO_TERMINATION_LOG"\n'
        "echo 'loading the model' >&2\nexit 3\n",
    )
    async with _kaito(tmp_path, python, scale=20) as kaito:
        yield kaito


async def test_a_command_that_exits_non_zero_is_a_crash_loop(crashing: Embedded) -> None:
    await crashing.cluster.client.create(WORKSPACE)
    cond = await _until(crashing, Reason.CRASH_LOOP_BACK_OFF)
    assert cond["message"].startswith('container "phi-3" is in CrashLoopBackOff'), cond
    assert "weights are corrupt" in cond["message"], cond


async def test_an_image_this_machine_cannot_run_is_an_image_pull_error(tmp_path: Path) -> None:
    python = _interpreter(tmp_path, "exit 0\n")
    image = "mcr.microsoft.com/aks/kaito/kaito-base:0.0.8"
    async with _kaito(tmp_path, python, runtime_image=image) as kaito:
        await kaito.cluster.client.create(WORKSPACE)
        cond = await _until(kaito, Reason.IMAGE_PULL_ERROR)
    # ErrImagePull at first, then ImagePullBackOff between tries, as a kubelet reports them.
    assert cond["message"].startswith(
        (
            'container "phi-3" image pull failed (ErrImagePull)',
            'container "phi-3" image pull failed (ImagePullBackOff)',
        )
    ), cond
    assert f'Failed to pull image "{image}"' in cond["message"], cond


async def test_a_server_whose_probes_never_pass_is_restarted_and_never_ready(
    tmp_path: Path,
) -> None:
    """As on a real node: the startup probe fails ``failureThreshold`` times, the kubelet kills
    the container and restarts it with back-off; the Workspace stays not ready, saying
    ``0/1 inference pods ready: container ... restarted after exit code ...`` while a run probes
    and ``ContainerCrashLoopBackOff`` while the kubelet backs off."""
    # Serves --host:5000, answering every probe 503 (a model that never finishes loading).
    server = tmp_path / "never_ready.py"
    python = _interpreter(tmp_path, f'exec /usr/bin/python3 {server} "$@"\n')
    server.write_text(
        "import http.server, sys\n"
        "host = sys.argv[sys.argv.index('--host') + 1]\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(503); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer((host, 5000), H).serve_forever()\n"
    )
    # The startup probe allows 30 minutes of failures: the kubelet's clock runs 1000 times faster.
    async with _kaito(tmp_path, python, scale=1000) as kaito:
        client = kaito.cluster.client
        await client.create(WORKSPACE)
        restarts = 0
        with anyio.fail_after(90):
            while restarts < 2:
                await anyio.sleep(0.2)
                pods = await client.list("v1", "Pod", "default")
                statuses = [cs for p in pods for cs in (p.get("status") or {}).get(
                    "containerStatuses") or []]  # fmt: skip
                restarts = max((cs.get("restartCount", 0) for cs in statuses), default=0)
        last = statuses[0]["lastState"]["terminated"]
        ws = await client.get("kaito.sh/v1beta1", "Workspace", "phi-3", "default")
        events = await client.list("v1", "Event", "default")
    # Stopped by the kubelet after its startup probe failed (143 for SIGTERM; a restart that
    # finds the port still held by its predecessor under load exits 1): an error either way.
    assert last["reason"] == "Error" and last["exitCode"] != 0, last
    cond = next(c for c in ws["status"]["conditions"] if c["type"] == ConditionType.INFERENCE_READY)
    assert cond["status"] == "False"
    if cond["reason"] == Reason.INFERENCE_PENDING:  # a run starts or probes
        assert re.fullmatch(
            r'0/1 inference pods ready(: container "phi-3" of pod phi-3-0 restarted after exit '
            r"code \d+ \(Error\); \d+ restarts)?",
            cond["message"],
        ), cond
    else:  # the kubelet is backing off
        assert cond["reason"] == Reason.CRASH_LOOP_BACK_OFF, cond
    assert ws["status"].get("state") != "Ready"
    unhealthy = {e["message"] for e in events if e.get("reason") == "Unhealthy"}
    assert "Startup probe failed: HTTP probe failed with statuscode: 503" in unhealthy, unhealthy


async def test_a_killed_runtime_process_is_restarted_and_the_workspace_says_why(
    tmp_path: Path,
) -> None:
    """The Pod's process killed from outside: the kubelet restarts the container, the Workspace
    goes not ready naming the container and its exit code, then ready again."""
    server = tmp_path / "healthy_runtime.py"
    python = _interpreter(tmp_path, f'exec /usr/bin/python3 {server} "$@"\n')
    server.write_text(
        "import http.server, sys\n"
        "host = sys.argv[sys.argv.index('--host') + 1]\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer((host, 5000), H).serve_forever()\n"
    )
    # Probe periods and the readiness probe's 30 s initial delay pass 50 times faster.
    async with _kaito(tmp_path, python, scale=50) as kaito:
        await kaito.cluster.client.create(WORKSPACE)
        await _until_ready(kaito)
        [pid] = [p for p, cmd in descendants(os.getpid()) if str(server) in cmd]
        os.kill(pid, signal.SIGKILL)
        cond = await _until(kaito, Reason.INFERENCE_PENDING, containing="exit code 137")
        await _until_ready(kaito)
    # One restart for the kill (more where a loaded machine let a probe time out meanwhile).
    assert re.fullmatch(
        r'0/1 inference pods ready: container "phi-3" of pod phi-3-0 restarted after exit code '
        r"137 \(Error\); (1 restart|\d+ restarts)",
        cond["message"],
    ), cond


async def _until_ready(kaito: Embedded, within: float = 60) -> None:
    with anyio.fail_after(within):
        while True:
            ws = await kaito.cluster.client.get("kaito.sh/v1beta1", "Workspace", "phi-3", "default")
            if (ws.get("status") or {}).get("state") == "Ready":
                return
            await anyio.sleep(0.2)
