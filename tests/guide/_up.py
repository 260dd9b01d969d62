"""A real ``kaito up`` subprocess, and the real kubectl and curl against it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from kaito_runtime import contract

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "examples" / "local"
TUNING = "workspace-tuning-phi-3"
INFERENCE = "workspace-phi-3-mini-adapter"
#: The guide's QLoRA template, cut to a few steps: the test checks the flow, not the loss.
QUICK_TUNING = "guide-quick-tuning"


class Up:
    """``kaito up`` running in the background; its stdout collected line by line."""

    def __init__(
        self, tmp: Path, *extra: str, ports: tuple[int, int], data_dir: Path | None = None
    ) -> None:
        """``ports``: the registry's and the hub's (kept across a restart: the stored
        Workspaces name the registry's address)."""
        self.tmp = tmp
        self.kubeconfig = tmp / "kubeconfig"
        self.lines: list[str] = []
        self._new = threading.Condition()
        args = [
            sys.executable,
            "-c",
            "from kaito.cli import main; main()",
            "up",
            "--kubeconfig-out",
            str(self.kubeconfig),
            "--registry-port",
            str(ports[0]),
            "--files-port",
            str(ports[1]),
            "--data-dir",
            str(data_dir or tmp / "data"),
            *extra,
        ]
        env = {**os.environ, "KUBECACHEDIR": str(tmp / "kube-cache")}
        self.proc = subprocess.Popen(
            args,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line matching ``pattern``; fails (with the output) after ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new:
            while True:
                for line in self.lines[seen:]:
                    found = regex.search(line)
                    if found:
                        return found
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"kaito up exited {self.proc.returncode}:\n{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matches {pattern!r}:\n{self.output}")
                self._new.wait(min(left, 1.0))

    def registry(self) -> str:
        return self.wait_for(r"OCI registry: (\S+)", 120).group(1)

    def files(self) -> str:
        return self.wait_for(r"model hub and the guide's data: (http://\S+)", 120).group(1)

    def stop(self, timeout: float = 60) -> int:
        """SIGINT, as Ctrl-C; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"kaito up ignored SIGINT for {timeout}s:\n{self.output}"
            ) from None
        self._reader.join(10)
        return code

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", *args],
            env={
                **os.environ,
                "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.tmp / "kube-cache"),
            },
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}\n{self.output}")
        return done

    def workspace(self, name: str) -> dict[str, Any]:
        doc = json.loads(self.kubectl("get", "workspace", name, "-o", "json").stdout)
        assert isinstance(doc, dict)
        return doc


def condition(ws: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (ws.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def local_manifest(name: str, registry: str, files: str) -> str:
    """``examples/local/NAME`` with the registry and data server ``kaito up`` printed."""
    text = (LOCAL / name).read_text()
    return text.replace("localhost:5000", registry).replace(
        "http://localhost:5001", files.replace("127.0.0.1", "localhost")
    )


def quick_tuning(text: str, steps: int) -> tuple[str, str]:
    """The tuning Workspace pointed at a ConfigMap of the QLoRA template with ``max_steps``;
    the ConfigMap's manifest."""
    doc = yaml.safe_load(text)
    doc["tuning"]["config"] = QUICK_TUNING
    # As the controller's default template: the Job downloads the weights (from the local hub).
    params = contract.QLORA_PARAMS.replace(
        "  TrainingArguments:\n", f"  TrainingArguments:\n    max_steps: {steps}\n"
    ).replace("local_files_only: true", "local_files_only: false")
    assert f"max_steps: {steps}" in params
    assert "local_files_only: false" in params
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": QUICK_TUNING},
        "data": {contract.TUNING_CONFIG_FILE: params},
    }
    return yaml.safe_dump(doc), yaml.safe_dump(config)


def free_ports(count: int) -> tuple[int, ...]:
    """Ports free on 127.0.0.1 now (the kernel's picks)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return tuple(sock.getsockname()[1] for sock in socks)
    finally:
        for sock in socks:
            sock.close()


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def descendants(pid: int) -> list[tuple[int, str]]:
    """The processes below ``pid`` and their command lines (from /proc)."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        commands[int(entry.name)] = cmdline.strip()
    found: list[tuple[int, str]] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, commands.get(child, "")))
        todo += children.get(child, [])
    return found


def runtime_processes(pid: int, module: str = "kaito_runtime") -> list[tuple[int, str]]:
    return [(p, c) for p, c in descendants(pid) if module in c and "standin" not in c]


def eventually(check: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy (an external process, no event to
    wait on); fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)
