"""Registry credentials from a docker config (``config.json`` or a ``.dockerconfigjson`` secret).

Kubernetes mounts an ``imagePushSecret``/``imagePullSecrets`` secret as a directory holding
``.dockerconfigjson``; docker writes ``config.json``. Both hold ``auths.<host>`` entries with an
``auth`` field (base64 of ``user:password``) or ``username``/``password`` fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import attrs

from kaito_runtime.oci._errors import DockerConfigError
from kaito_runtime.oci._reference import DOCKER_HUB, DOCKER_HUB_API

__all__ = ("Credentials", "load_credentials")

CONFIG_FILE_NAMES = ("config.json", ".dockerconfigjson")
_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"})


@attrs.frozen(repr=False)
class Credentials:
    """A username and password (or identity token) for one registry. The repr hides the secret."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"


def _config_files(path: Path) -> list[Path]:
    """The docker config files ``path`` names: itself, or in a directory ``config.json`` or
    ``.dockerconfigjson``, else every ``*.json`` (one per pull secret, as KAITO projects the
    secrets of an adapter or a data image: ``config.d/<name>/<secret>.json``)."""
    if path.is_dir():
        for name in CONFIG_FILE_NAMES:
            if (path / name).is_file():
                return [path / name]
        found = sorted(p for p in path.glob("*.json") if p.is_file())
        if found:
            return found
        raise DockerConfigError(
            f"docker config directory {str(path)!r} holds neither config.json, "
            ".dockerconfigjson nor <secret>.json files; mount the secret there or pass the file "
            "itself"
        )
    if not path.is_file():
        raise DockerConfigError(
            f"docker config {str(path)!r} does not exist; pass the path of a config.json or "
            "of a mounted kubernetes.io/dockerconfigjson secret"
        )
    return [path]


def _host_of(key: str) -> str:
    host = key.strip()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    return host.split("/", 1)[0].lower()


def _same_registry(key: str, registry: str) -> bool:
    host = _host_of(key)
    wanted = registry.lower()
    if wanted in _HUB_ALIASES:
        return host in _HUB_ALIASES
    return host == wanted


def _credentials_of(entry: dict[str, Any], where: str) -> Credentials | None:
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as err:
            raise DockerConfigError(
                f"{where}.auth is not base64 of user:password; re-create the secret with "
                "kubectl create secret docker-registry"
            ) from err
        user, sep, password = decoded.partition(":")
        if not sep:
            raise DockerConfigError(
                f"{where}.auth decodes to no 'user:password' pair; re-create the secret with "
                "kubectl create secret docker-registry"
            )
        return Credentials(user, password)
    if entry.get("identitytoken"):
        return Credentials("<token>", str(entry["identitytoken"]))
    if entry.get("username") is not None and entry.get("password") is not None:
        return Credentials(str(entry["username"]), str(entry["password"]))
    return None


def load_credentials(docker_config: Path | str | None, registry: str) -> Credentials | None:
    """Return the credentials ``docker_config`` holds for ``registry``, or ``None`` if none.

    ``docker_config`` is a ``config.json``, a ``.dockerconfigjson`` file, or a directory holding
    one of them or several ``<secret>.json`` files (the first that knows the registry wins);
    ``None`` means anonymous access.

    Raises:
        DockerConfigError: the file is missing, not JSON, or an entry is malformed.
    """
    if docker_config is None:
        return None
    for path in _config_files(Path(docker_config)):
        found = _credentials_in(path, registry)
        if found is not None:
            return found
    return None


def _credentials_in(path: Path, registry: str) -> Credentials | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DockerConfigError(
            f"docker config {str(path)!r} is not readable JSON ({err}); pass a docker config.json"
        ) from err
    if not isinstance(document, dict):
        raise DockerConfigError(f"docker config {str(path)!r} is not a JSON object")
    auths = document.get("auths", document)
    if not isinstance(auths, dict):
        raise DockerConfigError(f"docker config {str(path)!r}: 'auths' is not an object")
    for key, entry in auths.items():
        if isinstance(entry, dict) and _same_registry(str(key), registry):
            return _credentials_of(entry, f"auths[{key!r}]")
    return None
