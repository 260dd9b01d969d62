"""The OCI registry adapters go through on a local cluster: Debian's ``docker-registry``.

Top layer (``kaito up``). Started as a child process on loopback (``localhost:5000`` unless told
otherwise), storing its blobs under the data directory, so a tuned adapter image survives a
restart of ``kaito up``; or an already running registry named by the user. On AKS the same
images go to ACR; here the tuning Job pushes to this registry and the inference pod's puller
pulls from it, over plain HTTP as every client allows for loopback registries.
"""

from __future__ import annotations

import shutil
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO, Final

import aiohttp
import anyio
import anyio.abc
import anyio.to_thread
import attrs
import structlog

__all__ = ("REGISTRY_BINARY", "LocalRegistry", "RegistryError", "run_registry", "use_registry")

log = structlog.get_logger(__name__)

REGISTRY_BINARY: Final = "docker-registry"
_READY_WITHIN: Final = 15.0
_STOP_GRACE: Final = 5.0


class RegistryError(Exception):
    """The registry cannot be started or reached; the message says what to do."""


@attrs.frozen
class LocalRegistry:
    """A registry this machine can push to: ``host`` is what image references use."""

    host: str
    """``localhost:5000``: the registry part of image references."""
    url: str
    """``http://127.0.0.1:5000``: its API endpoint."""
    root: Path | None = None
    """Where its blobs are (None for a registry kaito up did not start)."""
    pid: int | None = None

    async def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of ``repository:tag`` (``Docker-Content-Digest``), or None if absent."""
        accept = ", ".join(
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
        )
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.head(
                f"{self.url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}
            ) as resp,
        ):
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return resp.headers.get("Docker-Content-Digest")


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RegistryError(f"registry address {address!r} is not HOST:PORT, e.g. localhost:5000")
    return host, int(port)


async def _answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"{url}/v2/") as resp,
        ):
            return resp.status in (200, 401)
    except (aiohttp.ClientError, TimeoutError):
        return False


@asynccontextmanager
async def use_registry(address: str) -> AsyncIterator[LocalRegistry]:
    """A registry someone else runs at ``address`` (checked to answer ``/v2/``)."""
    host, port = _split(address)
    api_host = "127.0.0.1" if host == "localhost" else host
    registry = LocalRegistry(host=address, url=f"http://{api_host}:{port}")
    if not await _answers(registry.url):
        raise RegistryError(
            f"no registry answers at {registry.url}/v2/; start one there, or leave --registry "
            "out and kaito up starts Debian's docker-registry"
        )
    yield registry


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(root: Path, port: int) -> str:
    return "\n".join(
        (
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {root / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            "  secret: kaito-up-local-registry",
            "",
        )
    )


def _prepare(root: Path, port: int) -> tuple[Path, BinaryIO]:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(_config(root, port))
    return config, (root / "registry.log").open("ab")


@asynccontextmanager
async def run_registry(root: Path, *, port: int = 5000) -> AsyncIterator[LocalRegistry]:
    """Run ``docker-registry`` on ``127.0.0.1:port`` (0: a free port) storing under ``root``;
    stop it (SIGTERM, then SIGKILL after 5 s) when the block ends.

    Raises:
        RegistryError: not installed, the port is taken, or it does not answer.
    """
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RegistryError(
            "Debian's docker-registry is not installed: apt-get install docker-registry (or "
            "name a running registry with --registry HOST:PORT)"
        )
    if port == 0:
        port = _free_port()
    elif not _port_free(port):
        raise RegistryError(
            f"port {port} on 127.0.0.1 is taken, so the registry cannot listen there; free it, "
            "pick another with --registry-port, or use the registry running there with "
            f"--registry localhost:{port}"
        )
    config, log_file = await anyio.to_thread.run_sync(_prepare, root, port)
    process = await anyio.open_process(
        [binary, "serve", str(config)], stdout=log_file, stderr=log_file, start_new_session=True
    )
    host = f"localhost:{port}"
    registry = LocalRegistry(host=host, url=f"http://127.0.0.1:{port}", root=root, pid=process.pid)
    try:
        with anyio.move_on_after(_READY_WITHIN):
            while not await _answers(registry.url):
                if process.returncode is not None:
                    break
                await anyio.sleep(0.05)
        if not await _answers(registry.url):
            text = await anyio.Path(root / "registry.log").read_text(errors="replace")
            tail = text.strip().splitlines()[-3:]
            raise RegistryError(
                f"docker-registry did not answer on {registry.url} within {_READY_WITHIN:g}s"
                + (f": {' '.join(tail)}" if tail else "")
            )
        log.info("registry_started", address=host, root=str(root), pid=process.pid)
        yield registry
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)
            log_file.close()
            log.info("registry_stopped", address=host)


async def _stop(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(_STOP_GRACE):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
    await process.aclose()
