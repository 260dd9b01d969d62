"""Where a container's process sees its files: a mount namespace of its own (bubblewrap), or, where
the machine does not allow one, the host's filesystem with the known paths rewritten.

With bubblewrap the container's root is assembled from read-only binds of the host's top-level
folders, a fresh ``/proc`` and ``/dev``, a ``/tmp`` of its own, the image's files and the Pod's
volumes at their mount paths; a folder that must hold a new mount point (``/mnt/data`` when the
host has ``/mnt``) is rebuilt from binds of its children so the host is never written. The
process gets its own PID, UTS (hostname) and IPC namespaces and dies with the kubelet
(``--die-with-parent``). ``/mnt/data`` then exists for that Pod only.

Without it (no ``bwrap``, or the kernel refuses namespaces), containers run as plain processes:
the volume mount paths, image files, working directory and termination-message path that appear
in the command, args and environment are rewritten to their host directories. What that cannot
do: paths a program builds itself, ``readOnly`` mounts, a private ``/tmp``, hostname or PID
namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

import attrs

__all__ = (
    "BwrapSandbox",
    "HostSandbox",
    "Launch",
    "LaunchSpec",
    "Mount",
    "Sandbox",
    "detect_sandbox",
)

# Top-level host folders the sandbox replaces rather than binds.
_REPLACED = frozenset({"proc", "dev", "tmp"})


@attrs.frozen
class Mount:
    """A host file or folder shown at ``container_path``."""

    container_path: str
    host_path: Path
    read_only: bool = False


@attrs.frozen
class LaunchSpec:
    """One container as the sandbox needs it (paths are the container's view)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    workdir: str
    mounts: tuple[Mount, ...]
    scratch: Path
    """A host folder of this container run (its ``/tmp``, rewritten working directory)."""
    hostname: str
    host_paths: tuple[str, ...] = ()
    """Host folders that must stay visible at their own path (the image's interpreter)."""


@attrs.frozen
class Launch:
    """What to execute on the host."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str


class Sandbox(Protocol):
    """Protocol: turns a container's view into a host command."""

    name: str
    isolated: bool
    """Whether the container has a mount and PID namespace of its own."""

    def launch(self, spec: LaunchSpec) -> Launch:
        """The command that starts the container's process."""
        ...

    def enter(self, spec: LaunchSpec, target_pid: int | None, argv: tuple[str, ...]) -> Launch:
        """A command that runs ``argv`` in the running container (``kubectl exec``), in the
        namespaces of ``target_pid`` (a process of the container)."""
        ...

    def host_path(self, spec: LaunchSpec, path: str) -> Path:
        """Where a container path is on the host (to check executables before starting)."""
        ...


def _mount_for(spec: LaunchSpec, path: str) -> tuple[Mount, str] | None:
    best: tuple[Mount, str] | None = None
    for mount in spec.mounts:
        root = mount.container_path.rstrip("/") or "/"
        inside = path == root or path.startswith(root + "/")
        if inside and (best is None or len(root) > len(best[0].container_path)):
            best = (mount, path[len(root) :].lstrip("/"))
    return best


class BwrapSandbox:
    """Containers in a mount, PID, UTS and IPC namespace of their own, built with bubblewrap."""

    name = "bwrap"
    isolated = True

    def __init__(self, bwrap: str, *, nsenter: str | None, setpriv: str | None) -> None:
        self._bwrap = bwrap
        self._nsenter = nsenter
        self._setpriv = setpriv

    def host_path(self, spec: LaunchSpec, path: str) -> Path:
        found = _mount_for(spec, path)
        if found is not None:
            mount, rest = found
            return mount.host_path / rest if rest else mount.host_path
        parts = PurePosixPath(path).parts
        if len(parts) > 1 and parts[1] == "tmp":
            return (
                spec.scratch / "tmp" / Path(*parts[2:]) if len(parts) > 2 else spec.scratch / "tmp"
            )
        return Path(path)

    def launch(self, spec: LaunchSpec) -> Launch:
        args = [
            self._bwrap,
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            spec.hostname,
        ]
        args += _root_layout(spec)
        args += ["--chdir", spec.workdir, "--", *spec.argv]
        prefix = [self._setpriv, "--pdeathsig", "KILL", "--"] if self._setpriv else []
        return Launch((*prefix, *args), dict(spec.env), "/")

    def enter(self, spec: LaunchSpec, target_pid: int | None, argv: tuple[str, ...]) -> Launch:
        if target_pid is None or self._nsenter is None:
            # No running process to join: a sandbox of its own with the same view.
            return self.launch(attrs.evolve(spec, argv=argv))
        return Launch(
            (
                self._nsenter,
                f"--target={target_pid}",
                "--mount",
                "--uts",
                "--ipc",
                "--pid",
                f"--wdns={spec.workdir}",
                "--",
                *argv,
            ),
            dict(spec.env),
            "/",
        )


def _root_layout(spec: LaunchSpec) -> list[str]:
    """bwrap arguments that assemble the container's root."""
    targets = [m.container_path for m in spec.mounts] + [spec.workdir]
    split = _folders_to_split(targets)
    args: list[str] = []
    for entry in sorted(os.listdir("/")):
        if entry in _REPLACED:
            continue
        _bind_tree(f"/{entry}", split, args)
    args += ["--proc", "/proc", "--dev", "/dev"]
    if os.path.isdir("/dev/pts"):
        # Terminals the kubelet opens for tty containers and exec sessions are the host's.
        args += ["--dev-bind", "/dev/pts", "/dev/pts"]
    (spec.scratch / "tmp").mkdir(parents=True, exist_ok=True)
    args += ["--bind", str(spec.scratch / "tmp"), "/tmp"]
    for host in spec.host_paths:
        parts = PurePosixPath(host).parts
        if len(parts) > 1 and parts[1] in _REPLACED and Path(host).exists():
            args += ["--ro-bind", host, host]
    # bubblewrap creates mount points before it changes root, so an absolute symbolic link on
    # the way (/var/run -> /run) would lead into the host: give it the path the link leads to.
    for mount in sorted(spec.mounts, key=lambda m: len(PurePosixPath(m.container_path).parts)):
        args += [
            "--ro-bind" if mount.read_only else "--bind",
            str(mount.host_path),
            _host_view(mount.container_path),
        ]
    if spec.workdir != "/" and not _covered(spec.workdir, spec):
        args += ["--dir", _host_view(spec.workdir)]
    return args


def _covered(path: str, spec: LaunchSpec) -> bool:
    if _mount_for(spec, path) is not None:
        return True
    parts = PurePosixPath(path).parts
    return len(parts) > 1 and parts[1] == "tmp"


def _host_view(path: str) -> str:
    """``path`` with the host's symbolic links resolved where they lead (``/var/run/x`` ->
    ``/run/x``), as bubblewrap follows them when it creates a mount point."""
    parts = PurePosixPath(path).parts
    for _ in range(40):
        current = "/"
        for depth, part in enumerate(parts[1:], start=1):
            candidate = os.path.join(current, part)
            if os.path.islink(candidate):
                target = os.path.join(current, os.readlink(candidate))
                rest = parts[depth + 1 :]
                parts = PurePosixPath(os.path.normpath(target), *rest).parts
                break
            current = candidate
        else:
            return "/" + "/".join(parts[1:])
    return path


def _folders_to_split(targets: list[str]) -> set[str]:
    """Host folders whose children must be bound one by one, because a mount point has to be
    created inside them and they are bound read-only."""
    split: set[str] = set()
    for target in targets:
        parts = PurePosixPath(_host_view(target)).parts
        if len(parts) < 2 or parts[1] in _REPLACED:
            continue
        for depth in range(2, len(parts) + 1):
            current = "/" + "/".join(parts[1:depth])
            if not os.path.lexists(current):
                parent = PurePosixPath(current).parent
                while str(parent) != "/":
                    split.add(str(parent))
                    parent = parent.parent
                break
    return split


def _bind_tree(path: str, split: set[str], args: list[str]) -> None:
    if os.path.islink(path):
        args += ["--symlink", os.readlink(path), path]
        return
    if path in split and os.path.isdir(path):
        args += ["--dir", path]
        try:
            children = sorted(os.listdir(path))
        except OSError:
            children = []
        for child in children:
            _bind_tree(f"{path}/{child}", split, args)
        return
    if os.path.lexists(path):
        args += ["--ro-bind", path, path]


class HostSandbox:
    """Containers as plain host processes, with known container paths rewritten to host paths."""

    name = "host"
    isolated = False

    def __init__(self, *, setpriv: str | None) -> None:
        self._setpriv = setpriv

    def _mapping(self, spec: LaunchSpec) -> dict[str, str]:
        mapping = {m.container_path.rstrip("/") or "/": str(m.host_path) for m in spec.mounts}
        workdir = spec.workdir.rstrip("/") or "/"
        if (
            workdir not in mapping
            and _mount_for(spec, workdir) is None
            and not os.path.isdir(workdir)
        ):
            mapping[workdir] = str(spec.scratch / "workdir")
        mapping.pop("/", None)
        return mapping

    def rewrite(self, spec: LaunchSpec, text: str) -> str:
        """``text`` with every known container path replaced by its host path."""
        mapping = self._mapping(spec)
        if not mapping:
            return text
        pattern = _rewrite_pattern(tuple(sorted(mapping, key=len, reverse=True)))
        return pattern.sub(lambda m: mapping[m.group(1)], text)

    def host_path(self, spec: LaunchSpec, path: str) -> Path:
        return Path(self.rewrite(spec, path))

    def launch(self, spec: LaunchSpec) -> Launch:
        env = {k: self.rewrite(spec, v) for k, v in spec.env.items()}
        (spec.scratch / "tmp").mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(spec.scratch / "tmp")
        cwd = self.rewrite(spec, spec.workdir)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        argv = tuple(self.rewrite(spec, a) for a in spec.argv)
        if argv and "/" not in argv[0]:
            found = shutil.which(argv[0], path=env.get("PATH", ""))
            argv = (found or argv[0], *argv[1:])
        prefix = (self._setpriv, "--pdeathsig", "KILL", "--") if self._setpriv else ()
        return Launch((*prefix, *argv), env, cwd)

    def enter(self, spec: LaunchSpec, target_pid: int | None, argv: tuple[str, ...]) -> Launch:
        del target_pid
        return self.launch(attrs.evolve(spec, argv=argv))


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _rewrite_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _PATTERNS.get(prefixes)
    if pattern is None:
        alternatives = "|".join(re.escape(p) for p in prefixes)
        pattern = re.compile(rf"(?<![\w.~/-])({alternatives})(?=$|[/\s:,;=\"')])")
        if len(_PATTERNS) > 256:
            _PATTERNS.clear()
        _PATTERNS[prefixes] = pattern
    return pattern


def detect_sandbox(mode: str = "auto") -> tuple[Sandbox, str]:
    """The sandbox to use and why (``auto``: bubblewrap when it works here; ``bwrap``: insist;
    ``host``: never). Blocking: runs ``bwrap`` once to see if the kernel lets it.

    Raises:
        RuntimeError: ``mode="bwrap"`` and bubblewrap cannot run here.
    """
    if mode not in ("auto", "bwrap", "host"):
        raise ValueError(f"sandbox={mode!r} is not one of auto, bwrap, host")
    setpriv = shutil.which("setpriv")
    if mode == "host":
        return HostSandbox(setpriv=setpriv), "sandbox=host was asked for"
    bwrap = shutil.which("bwrap")
    reason = ""
    if bwrap is None:
        reason = "bwrap is not installed (Debian: apt-get install bubblewrap)"
    else:
        trial = [
            bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--hostname", "probe", "--die-with-parent", "true",
        ]  # fmt: skip
        try:
            done = subprocess.run(trial, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            reason = f"bwrap did not run: {error}"
        else:
            if done.returncode == 0:
                nsenter = shutil.which("nsenter")
                return BwrapSandbox(bwrap, nsenter=nsenter, setpriv=setpriv), "bwrap works here"
            reason = f"bwrap is not permitted here: {done.stderr.strip() or done.returncode}"
    if mode == "bwrap":
        raise RuntimeError(f"sandbox='bwrap' was asked for but {reason}")
    return HostSandbox(setpriv=setpriv), reason
