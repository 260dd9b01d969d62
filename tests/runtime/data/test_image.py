"""Input packaged as an image: the files under ``/data`` land in the input directory."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaito_runtime.data import FetchError, pull_data_image
from kaito_runtime.data._cli import main
from kaito_runtime.oci import RegistryClient, load_credentials, parse_reference
from tests.support.registry import Registry, run_registry

pytestmark = pytest.mark.registry

USER, PASSWORD = "data", "pull-secret"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("data-registry"), auth=(USER, PASSWORD)) as reg:
        yield reg


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def _push_image(reg: Registry, image: str, files: dict[str, bytes], config_path: Path) -> None:
    """Build a one-layer image as ``docker build`` would (a tar+gzip rootfs layer) and push it."""
    layer, diff_id = _layer(files)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    ref = parse_reference(image)
    creds = load_credentials(config_path, ref.registry)
    with RegistryClient(ref, credentials=creds, actions=("pull", "push")) as client:
        blobs = []
        for data, media_type in (
            (config, "application/vnd.oci.image.config.v1+json"),
            (layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
        ):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            client.upload_blob(data, digest, len(data))
            blobs.append({"mediaType": media_type, "digest": digest, "size": len(data)})
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blobs[0],
            "layers": blobs[1:],
        }
        client.put_manifest(
            json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json", ref.target
        )


def test_the_data_directory_of_an_image_becomes_the_input(
    registry: Registry, tmp_path: Path
) -> None:
    secret = registry.docker_config(tmp_path / "docker" / "config.json")
    image = f"{registry.host}/datasets/dolly:1"
    _push_image(
        registry,
        image,
        {
            "data/train.parquet": b"PAR1-not-really",
            "data/extra/more.jsonl": b'{"text": "x"}\n',
            "etc/os-release": b"ignored",
        },
        secret,
    )
    dest = tmp_path / "mnt" / "data"
    files = pull_data_image(image, dest, secret)
    assert sorted(str(f.path.relative_to(dest)) for f in files) == [
        "extra/more.jsonl",
        "train.parquet",
    ]
    assert (dest / "train.parquet").read_bytes() == b"PAR1-not-really"
    assert sorted(p.name for p in dest.iterdir()) == ["extra", "train.parquet"]  # no staging left


def test_an_image_without_data_and_a_refused_pull_exit_3(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("KAITO_TERMINATION_LOG", str(log))
    secret = registry.docker_config(tmp_path / "docker" / "config.json")
    image = f"{registry.host}/datasets/empty:1"
    _push_image(registry, image, {"srv/readme.txt": b"x"}, secret)
    args = ["fetch", "--dest", str(tmp_path / "d"), "--image", image]
    assert main([*args, "--docker-config", str(secret)]) == 3
    assert "has no files under /data (it holds: srv/readme.txt); put the dataset under /data" in (
        log.read_text()
    )
    assert main(args) == 3
    assert log.read_text().startswith(f"cannot pull input image {image!r}: registry")
    assert "401" in log.read_text()
    with pytest.raises(FetchError):
        pull_data_image(f"{registry.host}/datasets/missing:1", tmp_path / "e", secret)
