"""What an image means to the local kubelet: which of the project's images and common tool images
run here, and as what.

There is no container runtime: an image "runs" when this table maps it to programs on this
machine. The project's runtime image (``kaito-runtime:*``, any registry) runs from a local
Python environment that has ``kaito_runtime`` installed, so the commands the controllers render
(``python -m kaito_runtime.inference ...``) run as written; ``kaito-manager:*`` runs the ``kaito``
command of that environment; ``curlimages/curl``, ``busybox`` and ``registry.k8s.io/pause`` run the
host's ``curl``, shell and core utilities. Any other image fails to "pull", with a message that
says why, the way a kubelet reports an image it cannot get.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs

__all__ = (
    "DEFAULT_PATH",
    "ImageError",
    "ImageProfile",
    "ImageTable",
    "normalize_image",
)

DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RUNTIME_BIN: Final = "/opt/kaito/bin"

# The reference grammar of distribution/reference, reduced to what decides validity here.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?)"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


class ImageError(Exception):
    """The image cannot run here; ``reason`` is the kubelet's waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def normalize_image(image: str) -> str:
    """The image's repository as Docker normalises it (``busybox``: ``docker.io/library/busybox``).

    Raises:
        ImageError: ``InvalidImageName`` when ``image`` is not a valid reference.
    """
    match = _REFERENCE.match(image)
    if not image or match is None:
        raise ImageError(
            "InvalidImageName",
            f'Failed to apply default image tag "{image}": couldn\'t parse image reference '
            f'"{image}": invalid reference format',
        )
    domain, path = match.group("domain"), match.group("path")
    if domain and ("." not in domain and ":" not in domain and domain != "localhost"):
        path, domain = f"{domain}/{path}", None
    if not domain:
        domain = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    return f"{domain}/{path}"


@attrs.frozen
class ImageProfile:
    """How one image runs on this machine: its config (entrypoint, cmd, env, working directory)
    and the files it adds to the container's filesystem."""

    name: str
    """Short name for logs and the docs' table (``kaito-runtime``)."""
    runs_as: str
    """What actually runs, in words (shown in events)."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=lambda: {"PATH": DEFAULT_PATH})
    workdir: str = "/"
    files: Mapping[str, str] = attrs.field(factory=dict)
    """Executable files the image provides: container path -> content."""
    host_paths: tuple[str, ...] = ()
    """Host directories its programs live in; the sandbox makes them visible at the same path."""
    requires: tuple[str, ...] = ()
    """Host programs it needs (looked up on the host's PATH)."""
    termination_log_env: str | None = None
    """An env var through which its programs accept another termination-message path (used when
    the kubelet cannot place ``/dev/termination-log``)."""

    @property
    def image_id(self) -> str:
        """A stable identifier for ``imageID`` (what runs, not a registry digest)."""
        return f"kaito-local://{self.name}"


def _python_wrapper(python: str) -> str:
    return f'#!/bin/sh\nexec {_quote(python)} "$@"\n'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


_CURL_ENTRYPOINT = """#!/bin/sh
# curlimages/curl's entrypoint: run curl unless the first argument is a command.
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ]; then
  set -- curl "$@"
fi
exec "$@"
"""

_PAUSE = """#!/bin/sh
# registry.k8s.io/pause: sleep until told to stop, then exit 0.
trap 'exit 0' INT TERM
while :; do
  sleep 3600 &
  wait $!
done
"""


@attrs.frozen
class ImageTable:
    """Which images run here. ``python`` is the interpreter of the environment with
    ``kaito_runtime`` installed (this process's own by default)."""

    python: str = sys.executable
    runtime_repositories: tuple[str, ...] = ("kaito-runtime",)
    """Last path components that name the project's runtime image, from any registry."""
    manager_repositories: tuple[str, ...] = ("kaito-manager",)
    runtime_env: Mapping[str, str] = attrs.field(factory=dict)
    """More variables of the runtime image (``kaito up``: where the model hub is), under the
    container's own."""
    runtime_note: str = ""
    """What else the runtime image brings, in words, for its ``Pulled`` event (``kaito up``:
    where the weights come from)."""
    runtime_paths: tuple[str, ...] = ()
    """More host folders the runtime image reads, bound into its sandbox (``kaito up``: the
    source folder of an editable install of ``kaito_runtime``)."""

    def _runtime(
        self, name: str, entrypoint: tuple[str, ...], cmd: tuple[str, ...]
    ) -> ImageProfile:
        python = str(Path(self.python).absolute())
        bin_dir = str(Path(python).parent)
        prefix = str(Path(sys.prefix if python == sys.executable else bin_dir).absolute())
        base = str(Path(python).resolve().parent.parent)
        runs_as = f"the Python environment of {python}"
        bound = (prefix, bin_dir, base)
        extra = [p for p in self.runtime_paths if not any(Path(p).is_relative_to(b) for b in bound)]
        return ImageProfile(
            name=name,
            runs_as=f"{runs_as}; {self.runtime_note}" if self.runtime_note else runs_as,
            entrypoint=entrypoint,
            cmd=cmd,
            env={
                "PATH": f"{_RUNTIME_BIN}:{bin_dir}:{DEFAULT_PATH}",
                "PYTHONUNBUFFERED": "1",
                "PIP_NO_CACHE_DIR": "1",
                "DEBIAN_FRONTEND": "noninteractive",
                "HF_HOME": "/workspace/weights",
                **self.runtime_env,
            },
            workdir="/workspace",
            files={
                f"{_RUNTIME_BIN}/python": _python_wrapper(python),
                f"{_RUNTIME_BIN}/python3": _python_wrapper(python),
            },
            host_paths=tuple(dict.fromkeys((*bound, *extra))),
            termination_log_env="KAITO_TERMINATION_LOG",
        )

    def resolve(self, image: str) -> ImageProfile:
        """The profile ``image`` runs as.

        Raises:
            ImageError: ``InvalidImageName`` for a malformed reference, ``ErrImagePull`` for an
                image this machine cannot run, or whose programs are missing.
        """
        repository = normalize_image(image)
        last = repository.rsplit("/", 1)[-1]
        if last in self.runtime_repositories:
            profile = self._runtime("kaito-runtime", (), ())
        elif last in self.manager_repositories:
            profile = self._runtime("kaito-manager", ("kaito",), ("manager",))
        elif repository == "docker.io/curlimages/curl":
            profile = ImageProfile(
                name="curl",
                runs_as="the host's curl",
                entrypoint=("/entrypoint.sh",),
                cmd=("curl",),
                files={"/entrypoint.sh": _CURL_ENTRYPOINT},
                requires=("sh", "curl"),
            )
        elif repository == "docker.io/library/busybox":
            profile = ImageProfile(
                name="busybox",
                runs_as="the host's shell and core utilities",
                cmd=("sh",),
                requires=("sh",),
            )
        elif repository in ("registry.k8s.io/pause", "k8s.gcr.io/pause"):
            profile = ImageProfile(
                name="pause",
                runs_as="a shell loop that sleeps until stopped",
                entrypoint=("/pause",),
                files={"/pause": _PAUSE},
                requires=("sh", "sleep"),
            )
        else:
            raise ImageError(
                "ErrImagePull",
                f'Failed to pull image "{image}": the local kubelet runs containers as processes '
                "of this machine and has no container runtime to pull images with; it runs "
                f"{self.supported()} (see docs/local-kubelet.md)",
            )
        missing = [tool for tool in profile.requires if shutil.which(tool) is None]
        if missing:
            raise ImageError(
                "ErrImagePull",
                f'Failed to pull image "{image}": it runs as {profile.runs_as}, but '
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed "
                "on this machine; install it to run this image",
            )
        return profile

    def supported(self) -> str:
        """The images this table runs, in words."""
        runtime = ", ".join(f"{name}:*" for name in self.runtime_repositories)
        manager = ", ".join(f"{name}:*" for name in self.manager_repositories)
        return f"{runtime}, {manager}, curlimages/curl, busybox and registry.k8s.io/pause only"
