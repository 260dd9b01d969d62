"""A Pod's volumes as directories on this machine: written (ConfigMap, Secret, downward API,
projected), created (emptyDir, persistentVolumeClaim) or found (hostPath).

Layout under the kubelet's root, as the real kubelet keeps ``/var/lib/kubelet``::

    pods/<uid>/volumes/<name>/          emptyDir, downwardAPI, configMap ... on disk
    <memory root>/<uid>/<name>/         emptyDir with medium Memory, Secrets and projected
                                        volumes, on a tmpfs (``/dev/shm``) when there is one
    claims/<namespace>/<claim>/         persistentVolumeClaim data (kept across Pods)

ConfigMap, Secret, downward-API and projected volumes are read-only in the containers, as on a
real node. They are written once when the Pod starts; later changes to their sources are not
propagated.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath

import anyio
import attrs

from kaito.cluster._json import Obj
from kaito.cluster._kubelet._env import ObjectLookup, decode_secret_value
from kaito.cluster._kubelet._fields import ContainerConfigError, PodFacts

__all__ = ("MountedVolume", "TokenSource", "VolumeError", "VolumeManager")

TokenSource = Callable[[Obj, str, int], Awaitable[str]]
"""``issue(pod, audience, expiration_seconds)`` -> a service account token for the Pod."""

_DEFAULT_MODE = 0o644
_SUPPORTED = (
    "emptyDir, hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim "
    "or ephemeral"
)


class VolumeError(Exception):
    """A volume cannot be set up (``FailedMount``); the message is the kubelet's."""


@attrs.frozen
class MountedVolume:
    """A volume ready to be mounted: where its data is on this machine."""

    name: str
    path: Path
    read_only: bool
    """Always mounted read-only (ConfigMap, Secret, downward API, projected)."""


@attrs.frozen
class _File:
    path: str
    data: bytes
    mode: int


def _item_path(volume: str, path: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise VolumeError(
            f'MountVolume.SetUp failed for volume "{volume}" : item path "{path}" must be a '
            "relative path without '..'"
        )
    return path


class VolumeManager:
    """Sets up and tears down one Pod's volumes."""

    def __init__(
        self,
        *,
        pod_dir: Path,
        memory_dir: Path | None,
        claims_dir: Path,
        lookup: ObjectLookup,
        facts: PodFacts,
        token_source: TokenSource | None = None,
    ) -> None:
        self._pod_dir = pod_dir
        self._memory_dir = memory_dir
        self._claims_dir = claims_dir
        self._lookup = lookup
        self._facts = facts
        self._token_source = token_source
        self.memory_backed: list[str] = []
        """Memory-medium volumes that had to fall back to disk (no tmpfs here)."""

    def _dir(self, name: str, *, memory: bool) -> Path:
        if memory and self._memory_dir is not None:
            return self._memory_dir / name
        if memory:
            self.memory_backed.append(name)
        return self._pod_dir / "volumes" / name

    async def setup(self, pod: Obj) -> dict[str, MountedVolume]:
        """Create every volume of ``pod``; idempotent (files are rewritten).

        Raises:
            VolumeError: with the message of the kubelet's ``FailedMount`` event.
        """
        mounted: dict[str, MountedVolume] = {}
        namespace = str((pod.get("metadata") or {}).get("namespace", ""))
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name", ""))
            try:
                mounted[name] = await self._setup_one(namespace, name, volume)
            except ContainerConfigError as error:
                raise VolumeError(
                    f'MountVolume.SetUp failed for volume "{name}" : {error}'
                ) from error
        return mounted

    async def _setup_one(self, namespace: str, name: str, volume: Obj) -> MountedVolume:
        if "emptyDir" in volume or "ephemeral" in volume:
            memory = (volume.get("emptyDir") or {}).get("medium") == "Memory"
            path = self._dir(name, memory=memory)
            await anyio.to_thread.run_sync(lambda: path.mkdir(parents=True, exist_ok=True))
            return MountedVolume(name, path, read_only=False)
        if "hostPath" in volume:
            source = volume["hostPath"]
            path = Path(str(source.get("path", "")))
            await anyio.to_thread.run_sync(_check_host_path, name, path, source.get("type") or "")
            return MountedVolume(name, path, read_only=False)
        if "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"].get("claimName", ""))
            path = self._claims_dir / namespace / claim
            await anyio.to_thread.run_sync(lambda: path.mkdir(parents=True, exist_ok=True))
            return MountedVolume(
                name, path, read_only=bool(volume["persistentVolumeClaim"].get("readOnly"))
            )
        files: list[_File] | None = None
        memory = False
        if "configMap" in volume:
            files = await self._config_map(name, namespace, volume["configMap"])
        elif "secret" in volume:
            files, memory = await self._secret(name, namespace, volume["secret"]), True
        elif "downwardAPI" in volume:
            files = self._downward(name, volume["downwardAPI"])
        elif "projected" in volume:
            files, memory = await self._projected(name, namespace, volume["projected"]), True
        if files is None:
            kinds = sorted(k for k in volume if k != "name")
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{name}" : the local kubelet cannot mount '
                f"{', '.join(kinds) or 'an empty'} volumes; use {_SUPPORTED}"
            )
        path = self._dir(name, memory=memory)
        await anyio.to_thread.run_sync(_write_files, path, files)
        return MountedVolume(name, path, read_only=True)

    async def _config_map(self, name: str, namespace: str, source: Obj) -> list[_File]:
        ref = str(source.get("name", ""))
        obj = await self._lookup("ConfigMap", namespace, ref)
        optional = bool(source.get("optional"))
        if obj is None:
            if optional:
                return []
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{name}" : configmap "{ref}" not found'
            )
        data: dict[str, bytes] = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        for key, value in (obj.get("binaryData") or {}).items():
            data[key] = decode_secret_value(str(value))
        return self._items(name, data, source, "configmap references non-existent config key")

    async def _secret(self, name: str, namespace: str, source: Obj) -> list[_File]:
        ref = str(source.get("secretName") or source.get("name") or "")
        obj = await self._lookup("Secret", namespace, ref)
        if obj is None:
            if source.get("optional"):
                return []
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{name}" : secret "{ref}" not found'
            )
        data = {k: decode_secret_value(str(v)) for k, v in (obj.get("data") or {}).items()}
        return self._items(name, data, source, "references non-existent secret key")

    def _items(self, name: str, data: dict[str, bytes], source: Obj, missing: str) -> list[_File]:
        mode = int(source.get("defaultMode", _DEFAULT_MODE))
        items = source.get("items")
        if not items:
            return [
                _File(_item_path(name, key), value, mode) for key, value in sorted(data.items())
            ]
        files = []
        for item in items:
            key = str(item.get("key", ""))
            if key not in data:
                if source.get("optional"):
                    continue
                raise VolumeError(
                    f'MountVolume.SetUp failed for volume "{name}" : {missing}: {key}'
                )
            files.append(
                _File(
                    _item_path(name, str(item.get("path", key))),
                    data[key],
                    int(item.get("mode", mode)),
                )
            )
        return files

    def _downward(self, name: str, source: Obj) -> list[_File]:
        mode = int(source.get("defaultMode", _DEFAULT_MODE))
        files = []
        for item in source.get("items") or []:
            if "fieldRef" in item:
                value = self._facts.field(
                    str(item["fieldRef"].get("fieldPath", "")), in_volume=True
                )
            elif "resourceFieldRef" in item:
                value = self._facts.resource(item["resourceFieldRef"], None)
            else:
                continue
            files.append(
                _File(
                    _item_path(name, str(item.get("path", ""))),
                    value.encode(),
                    int(item.get("mode", mode)),
                )
            )
        return files

    async def _projected(self, name: str, namespace: str, source: Obj) -> list[_File]:
        mode = int(source.get("defaultMode", _DEFAULT_MODE))
        files: list[_File] = []
        for part in source.get("sources") or []:
            if "configMap" in part:
                files += await self._config_map(
                    name, namespace, {"defaultMode": mode, **part["configMap"]}
                )
            elif "secret" in part:
                secret = dict(part["secret"])
                secret.setdefault("secretName", secret.get("name", ""))
                files += await self._secret(name, namespace, {"defaultMode": mode, **secret})
            elif "downwardAPI" in part:
                files += self._downward(name, {"defaultMode": mode, **part["downwardAPI"]})
            elif "serviceAccountToken" in part:
                files.append(await self._token(name, part["serviceAccountToken"], mode))
            else:
                kinds = ", ".join(sorted(part))
                raise VolumeError(
                    f'MountVolume.SetUp failed for volume "{name}" : projected {kinds} sources are '
                    "not supported by the local kubelet; use configMap, secret, downwardAPI or "
                    "serviceAccountToken"
                )
        return files

    async def _token(self, name: str, source: Obj, mode: int) -> _File:
        if self._token_source is None:
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{name}" : cannot issue a service account '
                "token: the local kubelet has no token source (start_cluster plugs in the "
                "cluster's TokenRequest issuer; otherwise pass LocalKubelet(token_source=...))"
            )
        token = await self._token_source(
            self._facts.pod,
            str(source.get("audience", "")),
            int(source.get("expirationSeconds", 3600)),
        )
        return _File(_item_path(name, str(source.get("path", "token"))), token.encode(), mode)

    def teardown(self) -> None:
        """Remove the Pod's volume directories (not hostPath or claim data). Blocking."""
        if self._memory_dir is not None:
            shutil.rmtree(self._memory_dir, ignore_errors=True)
        shutil.rmtree(self._pod_dir / "volumes", ignore_errors=True)


def _write_files(root: Path, files: list[_File]) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for file in files:
        target = root / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.data)
        os.chmod(target, file.mode & 0o777)


_HOST_PATH_CHECKS: dict[str, tuple[Callable[[int], bool], str]] = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def _check_host_path(volume: str, path: Path, kind: str) -> None:
    if kind == "DirectoryOrCreate":
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        return
    if kind == "FileOrCreate":
        if not path.exists():
            if not path.parent.is_dir():
                raise VolumeError(
                    f'MountVolume.SetUp failed for volume "{volume}" : hostPath type check failed: '
                    f"{path.parent} is not a directory"
                )
            path.touch(mode=0o644)
        return
    check = _HOST_PATH_CHECKS.get(kind)
    if check is None:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0
    if not check[0](mode):
        raise VolumeError(
            f'MountVolume.SetUp failed for volume "{volume}" : hostPath type check failed: '
            f"{path} is not {check[1]}"
        )
