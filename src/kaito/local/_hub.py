"""A model hub on loopback: the Hugging Face download protocol over local model folders.

Top layer (``kaito up``). The runtime pods download their weights as they do on a real cluster
(``from_pretrained("microsoft/Phi-3-mini-128k-instruct")`` into ``$HF_HOME``), with
``HF_ENDPOINT`` pointing here: the files come from a folder the user named (``--model-dir``) or
from the preset's stand-in, built on the first request (the request waits for the build; no pod
ever sees a half-built model). The subset served is what ``huggingface_hub`` needs to download:
``HEAD``/``GET /{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit`` and ``ETag``, the model
and tree APIs, and its error codes (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``). Dataset files are served where the Hub serves them
(``/datasets/ORG/NAME/resolve/main/FILE``), so the local guide's data URL has the guide's shape.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import attrs
import structlog
from aiohttp import web

__all__ = (
    "HubModel",
    "ModelHub",
    "ModelResolver",
    "ModelUnavailableError",
    "folder_commit",
    "serve_hub",
)

log = structlog.get_logger(__name__)

_REPO: Final = r"{org:[A-Za-z0-9][A-Za-z0-9._-]{0,95}}/{name:[A-Za-z0-9][A-Za-z0-9._-]{0,95}}"
_MAX_FILES: Final = 10_000


class ModelUnavailableError(Exception):
    """The hub has no model for this repo id; ``message`` says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@attrs.frozen
class HubModel:
    """A model the hub serves: its folder, a commit id for it, and whether it is a stand-in."""

    repo_id: str
    path: Path
    #: 40 hex digits, stable for the folder's content (what ``X-Repo-Commit`` says).
    commit: str
    stand_in: bool = False


ModelResolver = Callable[[str], Awaitable[HubModel]]
"""Finds (or builds) the model of a repo id; raises :class:`ModelUnavailableError`."""


def _files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
            out.append((relative, path))
            if len(out) > _MAX_FILES:
                break
    return out


def _etag(path: Path) -> str:
    """A file's ETag: its path, size and modification time, hashed (cheap for large weights)."""
    stat = path.stat()
    return hashlib.sha256(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()


class ModelHub:
    """The aiohttp application; ``resolve`` maps a repo id to a :class:`HubModel`."""

    def __init__(self, resolve: ModelResolver, *, datasets: Path | None = None) -> None:
        self._resolve = resolve
        self._datasets = datasets
        self.requests = 0
        """Requests answered (for tests and the status line)."""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_route("*", f"/{_REPO}/resolve/{{revision}}/{{path:.+}}", self._resolve_file)
        app.router.add_get(f"/api/models/{_REPO}", self._model_info)
        app.router.add_get(f"/api/models/{_REPO}/revision/{{revision}}", self._model_info)
        app.router.add_get(f"/api/models/{_REPO}/tree/{{revision}}", self._tree)
        app.router.add_get(f"/api/models/{_REPO}/tree/{{revision}}/{{path:.+}}", self._tree)
        app.router.add_route(
            "*", f"/datasets/{_REPO}/resolve/{{revision}}/{{path:.+}}", self._dataset_file
        )
        app.router.add_get("/", self._home)
        return app

    async def _dataset_file(self, request: web.Request) -> web.StreamResponse:
        """A dataset file, at the URL the Hub gives it (``/datasets/ORG/NAME/resolve/main/F``)."""
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        repo = f"{request.match_info['org']}/{request.match_info['name']}"
        relative = request.match_info["path"]
        if self._datasets is None:
            raise _error(404, "RepoNotFound", f"dataset {repo} is not served here")
        root = (self._datasets / repo).resolve()
        path = (root / relative).resolve()
        if root not in path.parents or not path.is_file():
            raise _error(404, "EntryNotFound", f"{relative} is not a file of dataset {repo}")
        self.requests += 1
        log.info("dataset_served", dataset=repo, file=relative)
        return web.FileResponse(path)

    async def _home(self, request: web.Request) -> web.Response:
        del request
        return web.Response(text="kaito up's model hub: the Hugging Face download API, locally\n")

    async def _model(self, request: web.Request) -> HubModel:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        self.requests += 1
        try:
            model = await self._resolve(repo_id)
        except ModelUnavailableError as err:
            raise _error(404, "RepoNotFound", err.message) from None
        revision = request.match_info.get("revision", "main")
        if revision not in ("main", model.commit):
            raise _error(
                404,
                "RevisionNotFound",
                f"revision {revision!r} of {repo_id} is not here: this hub serves one revision, "
                f"main ({model.commit})",
            )
        return model

    async def _resolve_file(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        model = await self._model(request)
        relative = request.match_info["path"]
        path = (model.path / relative).resolve()
        root = model.path.resolve()
        if root not in path.parents or not path.is_file():
            raise _error(404, "EntryNotFound", f"{relative} is not a file of {model.repo_id}")
        etag = await anyio.to_thread.run_sync(_etag, path)
        headers = {
            "X-Repo-Commit": model.commit,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
        }
        if model.stand_in:
            headers["X-Kaito-Stand-In"] = "true"
        if request.method == "HEAD":
            size = path.stat().st_size
            return web.Response(headers={**headers, "Content-Length": str(size)})
        log.debug("hub_file_served", repo=model.repo_id, file=relative)
        return web.FileResponse(path, headers=headers)

    async def _model_info(self, request: web.Request) -> web.Response:
        model = await self._model(request)
        files = await anyio.to_thread.run_sync(_files, model.path)
        body: dict[str, Any] = {
            "id": model.repo_id,
            "modelId": model.repo_id,
            "sha": model.commit,
            "private": False,
            "gated": False,
            "disabled": False,
            "library_name": "transformers",
            "tags": ["transformers", "kaito-stand-in"] if model.stand_in else ["transformers"],
            "siblings": [{"rfilename": name} for name, _ in files],
        }
        return web.json_response(body)

    async def _tree(self, request: web.Request) -> web.Response:
        model = await self._model(request)
        prefix = request.match_info.get("path", "").strip("/")
        files = await anyio.to_thread.run_sync(_files, model.path)
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for name, path in files:
            if prefix and not name.startswith(prefix + "/"):
                continue
            rest = name[len(prefix) + 1 :] if prefix else name
            head, sep, _ = rest.partition("/")
            if sep:
                folder = f"{prefix}/{head}" if prefix else head
                if folder not in seen:
                    seen.add(folder)
                    entries.append({"type": "directory", "path": folder, "oid": model.commit})
                continue
            entries.append(
                {"type": "file", "path": name, "size": path.stat().st_size, "oid": _etag(path)}
            )
        if prefix and not entries:
            raise _error(404, "EntryNotFound", f"{prefix} is not a folder of {model.repo_id}")
        return web.json_response(entries)


def _error(status: int, code: str, message: str) -> web.HTTPException:
    """An error as the Hub answers it: ``X-Error-Code`` for the client, the message in JSON."""
    headers = {"X-Error-Code": code, "X-Error-Message": " ".join(message.split())}
    body = json.dumps({"error": message})
    kind = web.HTTPNotFound if status == 404 else web.HTTPBadRequest
    return kind(headers=headers, text=body, content_type="application/json")


@asynccontextmanager
async def serve_hub(
    resolve: ModelResolver,
    *,
    datasets: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[str]:
    """Serve a :class:`ModelHub` for the block (``datasets``: the folder of dataset repos,
    ``ORG/NAME/FILE``); yields its URL (``HF_ENDPOINT``).

    Raises:
        OSError: the port is taken.
    """
    hub = ModelHub(resolve, datasets=datasets)
    runner = web.AppRunner(hub.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0]
    url = f"http://{host}:{bound[1]}"
    log.info("model_hub_started", url=url)
    try:
        yield url
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


def folder_commit(path: Path) -> str:
    """A commit id for a folder: its file names, sizes and modification times, hashed."""
    hasher = hashlib.sha1(usedforsecurity=False)
    for name, file in _files(path):
        stat = file.stat()
        hasher.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return hasher.hexdigest()
