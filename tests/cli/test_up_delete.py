"""`kaito up --apply` while a user runs ``kubectl delete workspace`` on what it shows (issue 13).

A real ``kaito up`` subprocess and the real kubectl: the status table drops the Workspace and
says so, and ``kaito up`` keeps running until it is stopped, with no traceback.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
import yaml

from kaito.cli._up import _watch_status
from kaito.embedded import embedded_kaito

REPO = Path(__file__).resolve().parents[2]
NAME = "workspace-phi-3-mini"


class Lines:
    """The lines a process writes to a pipe, read by a thread, waited for with a deadline."""

    def __init__(self, pipe: object) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, wanted: str, *, within: float = 120.0) -> None:
        """Return once a line containing ``wanted`` has been written (fail after ``within``)."""
        while not any(wanted in line for line in self.seen):
            try:
                line = self._queue.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"no {wanted!r} within {within}s; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"the output ended without {wanted!r}; saw {self.seen}")
            self.seen.append(line)

    def rest(self, *, within: float = 60.0) -> list[str]:
        """Every line, once the pipe has closed."""
        while True:
            try:
                line = self._queue.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"the output did not end within {within}s") from None
            if line is None:
                return self.seen
            self.seen.append(line)


def test_up_shows_a_workspace_deleted_with_kubectl_and_keeps_running(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    manifest = REPO / "examples/inference/kaito_workspace_phi_3.yaml"
    up = subprocess.Popen(
        [sys.executable, "-c", "from kaito.cli import main; main()", "up", "--kubelet", "simulated",
         "--apply", str(manifest)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = Lines(up.stdout), Lines(up.stderr)
        out.until(f"workspace/{NAME} applied")
        out.until(NAME + " ")  # a row of the status table
        kubectl = [
            "kubectl", "--kubeconfig", str(tmp_path / "kaito.kubeconfig"),
            "--cache-dir", str(tmp_path / "kube-cache"),
        ]  # fmt: skip
        deleted = subprocess.run(
            [*kubectl, "delete", "workspace", NAME, "--timeout=60s"],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert deleted.returncode == 0, deleted.stderr
        out.until(f"workspace/{NAME} deleted")
        listed = subprocess.run(
            [*kubectl, "get", "workspace", "-o", "name"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (listed.returncode, listed.stdout.strip()) == (0, "")  # still serving
        assert up.poll() is None, "kaito up exited after the deletion"
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    stderr = "\n".join(err.rest())
    assert up.returncode == 0, stderr
    assert "Traceback" not in stderr
    lines = out.rest()
    after = lines[lines.index(f"workspace/{NAME} deleted") :]
    assert not any(line.startswith(NAME + " ") for line in after)  # the row is gone


@pytest.mark.anyio
async def test_until_ready_counts_a_workspace_deleted_before_it_was_ready_as_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = yaml.safe_load((REPO / "examples/inference/kaito_workspace_phi_3.yaml").read_text())
    async with embedded_kaito(node_delay=3600) as kaito:  # its node never comes
        await kaito.cluster.client.create(doc, namespace="default")
        async with anyio.create_task_group() as tg:
            outcome: list[int] = []

            async def watch() -> None:
                outcome.append(await _watch_status(kaito, [("default", NAME)], True, 60))

            tg.start_soon(watch)
            await kaito.cluster.client.delete("kaito.sh/v1beta1", "Workspace", NAME, "default")
    assert outcome == [1]
    printed = capsys.readouterr()
    assert f"workspace/{NAME} deleted" in printed.out
    assert f"error: workspace/{NAME} in default was deleted" in printed.err
