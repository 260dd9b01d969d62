"""A real OCI registry (Debian's ``docker-registry``) on loopback, for adapter push/pull tests.

``.ci/run`` installs the package; the fixture starts one registry per use on a free port, with
optional htpasswd (bcrypt) basic auth, and stops it afterwards.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

__all__ = ("Registry", "run_registry")

REGISTRY_BINARY = "docker-registry"


@attrs.frozen
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; credentials are set when auth is on."""

    host: str
    root: Path
    username: str | None = None
    password: str | None = None

    def docker_config(self, path: Path) -> Path:
        """Write a docker ``config.json`` with this registry's credentials; return its path."""
        auths: dict[str, dict[str, str]] = {}
        if self.username is not None and self.password is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            auths[self.host] = {"auth": token}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"auths": auths}))
        return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with code {proc.returncode} at start")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401 with auth on: the server answers, so it is up.
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"docker-registry did not answer on {url}")


@contextmanager
def run_registry(
    root: Path,
    *,
    auth: tuple[str, str] | None = None,
    auth_config: list[str] | None = None,
) -> Iterator[Registry]:
    """Start ``docker-registry`` storing under ``root``; stop it on exit.

    ``auth_config`` is a raw ``auth:`` section (YAML lines), e.g. for token auth.
    """
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RuntimeError(
            "docker-registry is not installed; .ci/run installs it "
            "(apt-get install docker-registry)"
        )
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: kaito-tests",
    ]
    if auth is not None:
        import bcrypt

        user, password = auth
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        (root / "htpasswd").write_text(f"{user}:{hashed}\n")
        lines += [
            "auth:",
            "  htpasswd:",
            "    realm: kaito-tests",
            f"    path: {root / 'htpasswd'}",
        ]
    if auth_config is not None:
        lines += auth_config
    config = root / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/", proc, time.monotonic() + 10)
        yield Registry(
            host=f"127.0.0.1:{port}",
            root=root,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
