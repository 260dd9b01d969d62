"""Everything around the cluster that the guide needs on one machine, started and stopped as one.

Top layer (``kaito up``). :func:`local_stack` starts, in order: the model hub and dataset server
on loopback (the presets' weights: ``--model-dir`` folders or stand-ins built here; the guide's
dataset at a Hugging-Face-shaped URL), and the OCI registry the adapters go through (Debian's
``docker-registry`` on ``localhost:5000``, or one the user runs). It says what it is doing
through ``say``, and stops everything, freeing every port, when the block ends.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Final, Literal

import anyio
import anyio.to_thread
import attrs
import structlog

from kaito.cluster import ImageTable
from kaito.local._hub import serve_hub
from kaito.local._models import LocalModels
from kaito.local._registry import LocalRegistry, RegistryError, run_registry, use_registry

__all__ = (
    "GUIDE_DATASET",
    "LocalSettings",
    "LocalStack",
    "StackError",
    "default_cache_dir",
    "local_stack",
    "runtime_has_vllm",
)

log = structlog.get_logger(__name__)

#: The guide's dataset on the local hub: repo and file, as the guide's Hugging Face URL has them.
GUIDE_DATASET: Final = ("kaito/guide-chat", "data/train.parquet")
Weights = Literal["auto", "local", "hub"]


class StackError(Exception):
    """Something the stack needs cannot be had; the message says what to do."""


def default_cache_dir() -> Path:
    """Where stand-ins and the guide's dataset are cached without ``--data-dir``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kaito"


@attrs.frozen
class LocalSettings:
    """What ``kaito up``'s flags say about the stack."""

    #: ``--data-dir``: registry blobs, models and data kept here (None: temporary / cache).
    data_dir: Path | None = None
    #: ``--registry HOST:PORT``: use this running registry instead of starting one.
    registry: str | None = None
    #: Where the started registry listens on 127.0.0.1 (0: a free port).
    registry_port: int = 5000
    #: The model hub and dataset server on 127.0.0.1 (0: a free port).
    files_port: int = 5001
    weights: Weights = "auto"
    #: ``--model-dir``: Hugging Face model id -> a folder with the real weights.
    model_dirs: Mapping[str, Path] = attrs.field(factory=dict)
    #: The runtime image's interpreter (one that imports ``kaito_runtime``).
    python: str = sys.executable
    #: Start a registry at all (the simulated kubelet runs nothing that would use it).
    with_registry: bool = True

    @property
    def cache_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else default_cache_dir()


@attrs.frozen
class LocalStack:
    """The running stack: where things are, and the models it serves."""

    files_url: str
    """The model hub (``HF_ENDPOINT`` of the runtime pods) and dataset server."""
    dataset_url: str
    """The guide's dataset, as the local examples name it."""
    registry: LocalRegistry | None
    models: LocalModels
    weights: Literal["local", "hub"]
    python: str
    #: Where ``python`` imports ``kaito_runtime`` from, when outside its environment (an
    #: editable install's source folder): the kubelet binds it into the runtime's sandbox.
    runtime_paths: tuple[str, ...] = ()

    def runtime_env(self) -> dict[str, str]:
        """Variables of the runtime image: the weights come from the local hub."""
        if self.weights == "hub":
            return {"HF_HUB_DISABLE_TELEMETRY": "1"}
        return {
            "HF_ENDPOINT": self.files_url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # A stand-in is built on its first request: wait for it rather than time out.
            "HF_HUB_ETAG_TIMEOUT": "900",
            "HF_HUB_DOWNLOAD_TIMEOUT": "900",
            "TOKENIZERS_PARALLELISM": "false",
        }

    def image_table(self) -> ImageTable:
        """The local kubelet's images: the runtime runs from ``python`` with :meth:`runtime_env`."""
        note = (
            f"weights from kaito up's model hub at {self.files_url} (a --model-dir folder, or a "
            "stand-in with random weights)"
            if self.weights == "local"
            else "weights downloaded from the Hugging Face Hub"
        )
        return ImageTable(
            python=self.python,
            runtime_env=self.runtime_env(),
            runtime_note=note,
            runtime_paths=self.runtime_paths,
        )


def runtime_has_vllm(python: str) -> bool:
    """Whether the runtime's interpreter can import vLLM (without importing it here)."""
    if python == sys.executable:
        return importlib.util.find_spec("vllm") is not None
    import subprocess

    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    done = subprocess.run(
        [python, "-c", probe],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def _has_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


async def _hub_reachable() -> bool:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.head("https://huggingface.co/api/models/microsoft/phi-2") as resp,
        ):
            return resp.status < 500
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def choose_weights(
    weights: Weights, model_dirs: Mapping[str, Path]
) -> Literal["local", "hub"]:
    """``auto``: the real weights from the Hub on a machine with a GPU that reaches it; else
    the local hub (``--model-dir`` folders and stand-ins)."""
    if weights == "hub" and model_dirs:
        raise StackError(
            "--model-dir serves folders through kaito up's local model hub; it cannot be combined "
            "with --weights hub (leave --weights out, or use local)"
        )
    if weights != "auto":
        return weights
    if model_dirs or not _has_gpu():
        return "local"
    return "hub" if await _hub_reachable() else "local"


async def _runtime_source(python: str) -> tuple[str, ...]:
    """The folder ``python`` imports ``kaito_runtime`` from (``src`` of an editable install,
    ``site-packages`` otherwise)."""
    probe = "import kaito_runtime, pathlib; print(pathlib.Path(kaito_runtime.__file__).parents[1])"
    done = await anyio.run_process([python, "-c", probe], check=False)
    if done.returncode != 0:
        raise StackError(
            f"{python} cannot import kaito_runtime, so the runtime Pods cannot run: install "
            "kaito with its runtime (pip install -e '.[runtime]')"
        )
    return (done.stdout.decode().strip(),)


async def _prepare_dataset(python: str, target: Path, say: Callable[[str], None]) -> None:
    if await anyio.Path(target).is_file():
        return
    say("writing the guide's dataset (48 conversations about KAITO, parquet)")
    done = await anyio.run_process(
        [python, "-m", "kaito_runtime.standin", "dataset", "--out", str(target)],
        check=False,
        env={**os.environ, "KAITO_LOG_LEVEL": "warning"},
    )
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"cannot write the guide's dataset with {python}: {detail[0]}")


@asynccontextmanager
async def local_stack(
    settings: LocalSettings, *, say: Callable[[str], None] = lambda _: None
) -> AsyncIterator[LocalStack]:
    """Start the stack for the block.

    Raises:
        StackError: a port is taken, the registry cannot start, the dataset cannot be written.
    """
    weights = await choose_weights(settings.weights, settings.model_dirs)
    async with AsyncExitStack() as stack:
        scratch: Path | None = None
        if settings.data_dir is None:
            scratch = Path(
                await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="kaito-up-"))
            )
            stack.callback(shutil.rmtree, scratch, True)
        cache = settings.cache_dir
        datasets = cache / "datasets"
        repo, file = GUIDE_DATASET
        runtime_paths = await _runtime_source(settings.python)
        await _prepare_dataset(settings.python, datasets / repo / file, say)
        models = LocalModels(
            cache / "models", python=settings.python, model_dirs=settings.model_dirs, say=say
        )
        try:
            files_url = await stack.enter_async_context(
                serve_hub(models.resolve, datasets=datasets, port=settings.files_port)
            )
        except OSError as err:
            raise StackError(
                f"port {settings.files_port} on 127.0.0.1 is taken, so the model hub and dataset "
                f"server cannot listen there ({err.strerror}); free it or pick another with "
                "--files-port"
            ) from None
        port = files_url.rsplit(":", 1)[1]
        dataset_url = f"http://localhost:{port}/datasets/{repo}/resolve/main/{file}?download=true"
        registry: LocalRegistry | None = None
        if settings.registry is not None:
            try:
                registry = await stack.enter_async_context(use_registry(settings.registry))
            except RegistryError as err:
                raise StackError(str(err)) from None
        elif settings.with_registry:
            base = settings.data_dir or scratch
            assert base is not None
            try:
                registry = await stack.enter_async_context(
                    run_registry(base / "registry", port=settings.registry_port)
                )
            except RegistryError as err:
                if shutil.which("docker-registry") is not None:
                    raise StackError(str(err)) from None
                say(f"no registry: {err}; tuning Workspaces cannot push their adapters")
        log.info("local_stack_ready", files=files_url, weights=weights,
                 registry=registry.host if registry else None)  # fmt: skip
        yield LocalStack(
            files_url=files_url,
            dataset_url=dataset_url,
            registry=registry,
            models=models,
            weights=weights,
            python=settings.python,
            runtime_paths=runtime_paths,
        )
