"""Where a preset's weights come from on a local cluster: a folder the user named, or a stand-in.

Top layer (``kaito up``). Stand-ins are built by ``python -m kaito_runtime.standin`` in a child
process of the runtime's Python environment (the manager never imports the ML stack), once per
model id (concurrent requests wait for the same build), and cached under the data directory;
a cached stand-in is used as long as its marker is there. :meth:`LocalModels.resolve` is the
model hub's resolver.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import attrs
import structlog

from kaito.local._hub import HubModel, ModelUnavailableError, folder_commit

__all__ = ("STAND_IN_MARKER", "LocalModels", "StandIn")

log = structlog.get_logger(__name__)

#: The marker file ``kaito_runtime.standin`` writes beside a stand-in's weights.
STAND_IN_MARKER: Final = "kaito-stand-in.json"
_BUILD_TIMEOUT: Final = 600.0


@attrs.frozen
class StandIn:
    """A built stand-in: its folder, digest and the label it carries."""

    model_id: str
    path: Path
    digest: str
    note: str
    parameters: int


def _slug(model_id: str) -> str:
    return model_id.strip().replace("/", "--")


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / STAND_IN_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("digest"), str) else None


class LocalModels:
    """Resolves model ids to local folders: ``model_dirs`` first, else a (cached) stand-in.

    ``say`` is told, in words, what is being done (``kaito up`` prints it).
    """

    def __init__(
        self,
        cache: Path,
        *,
        python: str = sys.executable,
        model_dirs: Mapping[str, Path] | None = None,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.cache = cache
        self.python = python
        self.model_dirs = {k.lower(): Path(v) for k, v in (model_dirs or {}).items()}
        self.say = say
        self._builds: dict[str, anyio.Event] = {}
        self._failures: dict[str, str] = {}
        self.stand_ins: dict[str, StandIn] = {}
        """Stand-ins in use, by lower-cased model id."""

    def folder(self, model_id: str) -> Path:
        """Where the stand-in of ``model_id`` is cached."""
        return self.cache / "stand-ins" / _slug(model_id)

    def cached(self, model_id: str) -> StandIn | None:
        """The cached stand-in of ``model_id``, if it has been built."""
        path = self.folder(model_id)
        marker = _read_marker(path)
        if marker is None:
            return None
        return StandIn(
            model_id=str(marker.get("model_id") or model_id),
            path=path,
            digest=marker["digest"],
            note=str(marker.get("note") or f"stand-in for {model_id}"),
            parameters=int(marker.get("parameters") or 0),
        )

    async def resolve(self, repo_id: str) -> HubModel:
        """The hub's resolver: the user's folder for ``repo_id``, else its stand-in."""
        user = self.model_dirs.get(repo_id.lower())
        if user is not None:
            if not (user / "config.json").is_file():
                raise ModelUnavailableError(
                    f"--model-dir for {repo_id}: {user} holds no config.json; give the folder "
                    "save_pretrained wrote (config.json, weights, tokenizer)"
                )
            commit = await anyio.to_thread.run_sync(folder_commit, user)
            return HubModel(repo_id, user, commit, stand_in=False)
        stand_in = await self.ensure_stand_in(repo_id)
        return HubModel(repo_id, stand_in.path, stand_in.digest[:40], stand_in=True)

    async def ensure_stand_in(self, model_id: str) -> StandIn:
        """The stand-in of ``model_id``, built first if it is not cached (one build at a time
        per model; others wait for it).

        Raises:
            ModelUnavailableError: no stand-in is known for it, or the build failed.
        """
        key = model_id.lower()
        while True:
            found = await anyio.to_thread.run_sync(self.cached, model_id)
            if found is not None:
                self._remember(key, found)
                return found
            if key in self._failures:
                raise ModelUnavailableError(self._failures[key])
            running = self._builds.get(key)
            if running is None:
                break
            await running.wait()
        done = self._builds[key] = anyio.Event()
        try:
            built = await self._build(model_id)
        except ModelUnavailableError as err:
            self._failures[key] = err.message
            raise
        finally:
            del self._builds[key]
            done.set()
        self._remember(key, built)
        return built

    def _remember(self, key: str, stand_in: StandIn) -> None:
        if key not in self.stand_ins:
            self.stand_ins[key] = stand_in
            log.warning("model_is_stand_in", model=stand_in.model_id, note=stand_in.note)

    async def _build(self, model_id: str) -> StandIn:
        target = self.folder(model_id)
        self.say(f"building the stand-in model for {model_id} (random weights, real architecture)")
        started = time.monotonic()
        command = [self.python, "-m", "kaito_runtime.standin", "build", model_id]
        command += ["--out", str(target)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "KAITO_LOG_LEVEL": "warning"}
        try:
            with anyio.fail_after(_BUILD_TIMEOUT):
                done = await anyio.run_process(command, env=env, check=False)
        except TimeoutError:
            raise ModelUnavailableError(
                f"building the stand-in for {model_id} took more than {_BUILD_TIMEOUT:g}s"
            ) from None
        except OSError as err:
            raise ModelUnavailableError(
                f"cannot run {self.python} to build the stand-in for {model_id}: {err}"
            ) from None
        if done.returncode != 0:
            detail = _last_line(done.stderr) or f"exit code {done.returncode}"
            raise ModelUnavailableError(detail.removeprefix("error: "))
        stand_in = await anyio.to_thread.run_sync(self.cached, model_id)
        if stand_in is None:
            raise ModelUnavailableError(f"the stand-in build for {model_id} wrote no marker")
        self.say(
            f"built the stand-in for {model_id} in {time.monotonic() - started:.1f}s: "
            f"{stand_in.parameters:,} parameters, digest {stand_in.digest[:12]}"
        )
        return stand_in


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1]
