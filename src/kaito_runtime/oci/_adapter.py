"""Push and pull LoRA adapters as OCI images, in upstream KAITO's layout.

The image is an OCI image manifest with one ``application/vnd.oci.image.layer.v1.tar+gzip`` layer
holding ``data/adapter_config.json`` and ``data/adapter_model.safetensors``, an image config whose
``rootfs.diff_ids`` names the uncompressed layer, and the manifest annotation
``sh.kaito.model.name=<preset>``. Pull also accepts the other shapes adapters are found in: files
at the layer root (``FROM scratch`` + ``ADD``), a directory layer, and one file per layer named by
its ``org.opencontainers.image.title`` annotation (``oras push IMAGE adapter_config.json ...``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import attrs
import structlog

from kaito_runtime.oci._credentials import load_credentials
from kaito_runtime.oci._errors import DigestMismatchError, NoAdapterError, OCIError
from kaito_runtime.oci._layer import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    pack_adapter_layer,
    sniff_layer,
    unpack_layer,
)
from kaito_runtime.oci._reference import ImageReference, parse_reference
from kaito_runtime.oci._registry import Manifest, RegistryClient, sha256_digest

__all__ = (
    "MODEL_NAME_ANNOTATION",
    "PulledAdapter",
    "pull_adapter",
    "push_adapter",
)

log = structlog.get_logger(__name__)

MODEL_NAME_ANNOTATION = "sh.kaito.model.name"
TITLE_ANNOTATION = "org.opencontainers.image.title"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MAX_CONFIG_BYTES = 1 << 20
STAGING_PREFIX = ".kaito-pull-"


@attrs.frozen
class PulledAdapter:
    """What :func:`pull_adapter` wrote: the manifest digest, the files, and the base model name."""

    image: str
    digest: str
    directory: Path
    files: tuple[str, ...]
    model_name: str | None


def push_adapter(
    directory: Path | str,
    image: str,
    docker_config: Path | str | None = None,
    model_name: str | None = None,
    *,
    plain_http: bool | None = None,
) -> str:
    """Package the adapter in ``directory`` as an OCI image, push it, return the manifest digest.

    ``docker_config`` is a docker ``config.json`` or a mounted ``.dockerconfigjson`` secret (file
    or directory); ``model_name`` becomes the ``sh.kaito.model.name`` annotation. ``plain_http``
    defaults to HTTP for loopback registries and HTTPS elsewhere. Pushing the same adapter twice
    gives the same digest and uploads no blob twice.

    Raises:
        NoAdapterError: ``directory`` lacks ``adapter_config.json`` or the weights.
        AuthenticationError, ImageNotFoundError, RegistryError: the registry refused.
    """
    source = Path(directory)
    ref = parse_reference(image)
    if ref.digest is not None:
        raise OCIError(
            f"image {image!r} names a digest; push to a tag (host/repository:tag), the digest "
            "is computed from the content"
        )
    credentials = load_credentials(docker_config, ref.registry)
    with tempfile.TemporaryDirectory(prefix="kaito-push-") as scratch:
        layer = pack_adapter_layer(source, Path(scratch))
        config = _json_bytes(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            }
        )
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER_GZIP,
                    "digest": layer.digest,
                    "size": layer.size,
                    "annotations": {TITLE_ANNOTATION: layer.path.name},
                }
            ],
        }
        if model_name:
            manifest["annotations"] = {MODEL_NAME_ANNOTATION: model_name}
        raw = _json_bytes(manifest)
        with RegistryClient(
            ref, credentials=credentials, actions=("pull", "push"), plain_http=plain_http
        ) as client:
            client.upload_blob(layer.path, layer.digest, layer.size)
            client.upload_blob(config, sha256_digest(config), len(config))
            digest = client.put_manifest(raw, OCI_MANIFEST, ref.target)
    log.info("adapter_pushed", image=str(ref), digest=digest, layer_bytes=layer.size)
    return digest


def pull_adapter(
    image: str,
    dest: Path | str,
    docker_config: Path | str | None = None,
    *,
    plain_http: bool | None = None,
) -> PulledAdapter:
    """Pull the adapter image ``image`` and write its adapter files directly into ``dest``.

    Every blob is verified against its digest (and each tar layer against the config's
    ``diff_ids``) before anything is written to ``dest``; on any error ``dest`` is left without a
    partial adapter.

    Raises:
        NoAdapterError: the image holds no ``adapter_config.json`` with adapter weights.
        DigestMismatchError: a manifest, blob or layer does not match its digest.
        AuthenticationError, ImageNotFoundError, RegistryError: the registry refused.
    """
    ref = parse_reference(image)
    target_dir = Path(dest)
    target_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(target_dir)
    credentials = load_credentials(docker_config, ref.registry)
    with (
        RegistryClient(ref, credentials=credentials, plain_http=plain_http) as client,
        tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=target_dir) as scratch,
    ):
        staging = Path(scratch)
        manifest = _image_manifest(client, ref)
        model_name = _annotations(manifest.document).get(MODEL_NAME_ANNOTATION)
        diff_ids = _diff_ids(client, manifest.document, staging)
        tree = staging / "tree"
        tree.mkdir()
        layers = manifest.document.get("layers") or []
        if not isinstance(layers, list):
            raise OCIError(f"manifest of {ref} has no layer list; it is not an image")
        for position, layer in enumerate(layers):
            _fetch_layer(
                client, ref, layer, position, staging=staging, tree=tree, diff_ids=diff_ids
            )
        root = _adapter_root(tree, ref, manifest.document)
        files = _install(root, target_dir)
    log.info("adapter_pulled", image=str(ref), digest=manifest.digest, files=files)
    return PulledAdapter(
        image=str(ref),
        digest=manifest.digest,
        directory=target_dir,
        files=files,
        model_name=str(model_name) if model_name is not None else None,
    )


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _annotations(document: dict[str, Any]) -> dict[str, Any]:
    annotations = document.get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _image_manifest(client: RegistryClient, ref: ImageReference) -> Manifest:
    manifest = client.get_manifest(ref.target, MANIFEST_TYPES)
    if manifest.media_type in INDEX_TYPES or "manifests" in manifest.document:
        entries = manifest.document.get("manifests") or []
        chosen = _choose_platform(entries)
        if chosen is None:
            raise NoAdapterError(f"image {ref} is an empty index; it holds no adapter")
        manifest = client.get_manifest(str(chosen["digest"]), MANIFEST_TYPES)
        if manifest.digest != chosen["digest"]:
            raise DigestMismatchError(
                f"manifest {chosen['digest']} of {ref} hashes to {manifest.digest}; re-push it"
            )
    return manifest


def _choose_platform(entries: list[Any]) -> dict[str, Any] | None:
    usable = [e for e in entries if isinstance(e, dict) and "digest" in e]
    for entry in usable:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return entry
    return usable[0] if usable else None


def _diff_ids(client: RegistryClient, document: dict[str, Any], staging: Path) -> list[str]:
    config = document.get("config")
    if not isinstance(config, dict) or "digest" not in config:
        return []
    path = staging / "config.json"
    with path.open("wb") as out:
        client.fetch_blob(str(config["digest"]), out, limit=MAX_CONFIG_BYTES)
    try:
        parsed = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []  # an artifact config (oras's "{}" or a custom type) carries no diff_ids
    rootfs = parsed.get("rootfs") if isinstance(parsed, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _fetch_layer(
    client: RegistryClient,
    ref: ImageReference,
    layer: Any,
    position: int,
    *,
    staging: Path,
    tree: Path,
    diff_ids: list[str],
) -> None:
    if not isinstance(layer, dict) or "digest" not in layer:
        raise OCIError(f"layer {position} of {ref} has no digest; the manifest is malformed")
    media_type = str(layer.get("mediaType", ""))
    digest = str(layer["digest"])
    blob = staging / f"layer-{position}"
    with blob.open("wb") as out:
        client.fetch_blob(digest, out)
    kind = sniff_layer(blob)
    if kind == "zstd":
        raise OCIError(
            f"layer {position} of {ref} is zstd-compressed ({media_type}); push the adapter "
            "with gzip compression"
        )
    if kind in ("tar", "tar+gzip"):
        diff_id = unpack_layer(blob, tree, gzipped=kind == "tar+gzip")
        if position < len(diff_ids) and diff_ids[position] != diff_id:
            raise DigestMismatchError(
                f"layer {position} of {ref} unpacks to {diff_id} but the image config names "
                f"{diff_ids[position]}; re-push the image"
            )
    else:
        title = _annotations(layer).get(TITLE_ANNOTATION)
        name = PurePosixPath(str(title)).name if title else ""
        if name and name not in (".", ".."):
            os.replace(blob, tree / name)
    blob.unlink(missing_ok=True)


def _adapter_root(tree: Path, ref: ImageReference, document: dict[str, Any]) -> Path:
    configs = sorted(tree.rglob(ADAPTER_CONFIG), key=lambda p: (len(p.parts), str(p)))
    for config in configs:
        if any((config.parent / name).is_file() for name in ADAPTER_WEIGHTS):
            return config.parent
    found = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
    annotated = _annotations(document).get(MODEL_NAME_ANNOTATION)
    detail = f"it holds {shown}" if found else "it holds no files"
    raise NoAdapterError(
        f"image {ref} holds no adapter ({detail}); an adapter image has data/{ADAPTER_CONFIG} "
        f"and data/{ADAPTER_WEIGHTS[0]}"
        + (f" (annotated for model {annotated})" if annotated else "")
        + "; push one with: python -m kaito_runtime.adapters push DIR IMAGE"
    )


def _install(root: Path, target_dir: Path) -> tuple[str, ...]:
    config = root / ADAPTER_CONFIG
    try:
        parsed = json.loads(config.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NoAdapterError(f"{ADAPTER_CONFIG} in the image is not JSON ({err})") from err
    if not isinstance(parsed, dict):
        raise NoAdapterError(f"{ADAPTER_CONFIG} in the image is not a JSON object")
    names = []
    for path in sorted(root.iterdir()):
        if path.is_file():
            os.replace(path, target_dir / path.name)
            names.append(path.name)
    return tuple(names)


def _remove_stale_staging(target_dir: Path) -> None:
    for stale in target_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
