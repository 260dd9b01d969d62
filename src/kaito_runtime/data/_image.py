"""Input from an image: pull it and take the dataset under its ``/data`` directory.

Runtime layer (tuning Job init container). Upstream's ``tuning.input.image`` contract: the
dataset lives under ``/data`` in the image, and is copied into the input directory. Registry
access, digest checks and safe layer unpacking are ``kaito_runtime.oci``'s; this module only
walks the manifest to its layers and installs the ``data/`` tree. Files are staged inside the
destination and moved into place one by one, so nothing partial appears under a final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from kaito_runtime.data._download import FetchedFile
from kaito_runtime.data._errors import FetchError
from kaito_runtime.oci import (
    Manifest,
    OCIError,
    RegistryClient,
    load_credentials,
    parse_reference,
    sniff_layer,
    unpack_layer,
)

__all__ = ("DATA_ROOT", "pull_data_image")

log = structlog.get_logger(__name__)

DATA_ROOT = "data"
STAGING_PREFIX = ".kaito-data-pull-"
TITLE_ANNOTATION = "org.opencontainers.image.title"
_MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEXES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def _image_manifest(client: RegistryClient, target: str) -> Manifest:
    manifest = client.get_manifest(target, _MANIFESTS + _INDEXES)
    if manifest.media_type not in _INDEXES and "manifests" not in manifest.document:
        return manifest
    entries = [e for e in manifest.document.get("manifests") or [] if isinstance(e, dict)]
    linux = [
        e
        for e in entries
        if (e.get("platform") or {}).get("os") == "linux"
        and (e.get("platform") or {}).get("architecture") == "amd64"
    ]
    candidates = linux or entries
    chosen = candidates[0] if candidates else None
    if chosen is None or "digest" not in chosen:
        raise FetchError(f"input image {target!r} is an empty index; push the dataset image")
    return client.get_manifest(str(chosen["digest"]), _MANIFESTS)


def _unpack(client: RegistryClient, layers: list[Any], staging: Path, tree: Path) -> None:
    for position, layer in enumerate(layers):
        digest = str(layer.get("digest", "")) if isinstance(layer, dict) else ""
        if not digest:
            raise FetchError(f"layer {position} of the input image has no digest; re-push it")
        blob = staging / f"layer-{position}"
        with blob.open("wb") as out:
            client.fetch_blob(digest, out)
        kind = sniff_layer(blob)
        if kind in ("tar", "tar+gzip"):
            unpack_layer(blob, tree, gzipped=kind == "tar+gzip")
        elif kind == "file":
            # An oras-pushed file: its title names it; it belongs to the data directory.
            title = (layer.get("annotations") or {}).get(TITLE_ANNOTATION)
            name = PurePosixPath(str(title)).name if title else ""
            if name and name not in (".", ".."):
                (tree / DATA_ROOT).mkdir(parents=True, exist_ok=True)
                os.replace(blob, tree / DATA_ROOT / name)
        else:
            raise FetchError(
                f"layer {position} of the input image is zstd-compressed; push it with gzip"
            )
        blob.unlink(missing_ok=True)


def pull_data_image(
    image: str, dest: Path, docker_config: Path | None = None, *, plain_http: bool | None = None
) -> list[FetchedFile]:
    """Pull ``image`` and move the files under its ``/data`` into ``dest``; return them.

    ``docker_config`` is a docker ``config.json`` (the image pull secret). Registry refusals,
    digest mismatches and a missing ``/data`` directory raise FetchError with the reason.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        ref = parse_reference(image)
        credentials = load_credentials(docker_config, ref.registry)
        with (
            RegistryClient(ref, credentials=credentials, plain_http=plain_http) as client,
            tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=dest) as scratch,
        ):
            staging = Path(scratch)
            tree = staging / "tree"
            tree.mkdir()
            manifest = _image_manifest(client, ref.target)
            layers = manifest.document.get("layers")
            if not isinstance(layers, list):
                raise FetchError(f"input image {image!r} has no layers; it is not an image")
            _unpack(client, layers, staging, tree)
            root = tree / DATA_ROOT
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
            if not files:
                found = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
                raise FetchError(
                    f"input image {image!r} has no files under /data (it holds: "
                    f"{', '.join(found[:8]) or 'nothing'}); put the dataset under /data"
                )
            fetched = []
            for path in files:
                target = dest / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                size = path.stat().st_size
                os.replace(path, target)
                fetched.append(FetchedFile(url=f"{image}#/data", path=target, size=size))
    except OCIError as err:
        raise FetchError(f"cannot pull input image {image!r}: {err}") from None
    log.info("data_image_pulled", image=image, digest=manifest.digest, files=len(fetched))
    return fetched
