"""Adapter images against a real registry: round trips, upstream layout, auth, and failures."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from kaito_runtime.adapters import main as adapters_main
from kaito_runtime.oci import (
    AuthenticationError,
    DigestMismatchError,
    ImageNotFoundError,
    NoAdapterError,
    pull_adapter,
    push_adapter,
)
from tests.runtime.oci.conftest import PASSWORD, USER
from tests.support.registry import Registry

pytestmark = pytest.mark.registry

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(reg: Registry, repo: str, ref: str) -> tuple[dict, str]:
    response = httpx.get(
        f"http://{reg.host}/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
    )
    response.raise_for_status()
    return response.json(), "sha256:" + hashlib.sha256(response.content).hexdigest()


def _blob(reg: Registry, repo: str, digest: str) -> bytes:
    response = httpx.get(f"http://{reg.host}/v2/{repo}/blobs/{digest}")
    response.raise_for_status()
    return response.content


def test_push_then_pull_round_trips_the_adapter_files(
    registry: Registry, lora_adapter: Path, tmp_path: Path
) -> None:
    image = f"{registry.host}/adapters/round-trip:0.0.1"
    digest = push_adapter(lora_adapter, image, model_name="phi-3-mini-4k-instruct")

    pulled = pull_adapter(image, tmp_path / "mnt" / "adapter" / "round-trip")

    assert pulled.digest == digest
    assert pulled.model_name == "phi-3-mini-4k-instruct"
    assert pulled.files == ADAPTER_FILES
    assert sorted(p.name for p in pulled.directory.iterdir()) == sorted(ADAPTER_FILES)
    for name in ADAPTER_FILES:
        assert _sha(pulled.directory / name) == _sha(lora_adapter / name)


def test_push_writes_upstream_kaito_layout_reproducibly(
    registry: Registry, lora_adapter: Path
) -> None:
    image = f"{registry.host}/adapters/layout:v1"
    digest = push_adapter(lora_adapter, image, model_name="phi-3-mini-128k-instruct")
    assert (
        push_adapter(
            lora_adapter, f"{registry.host}/adapters/layout:v2", None, "phi-3-mini-128k-instruct"
        )
        == digest
    )

    manifest, served = _manifest(registry, "adapters/layout", "v1")
    assert served == digest
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["annotations"] == {"sh.kaito.model.name": "phi-3-mini-128k-instruct"}
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    compressed = _blob(registry, "adapters/layout", layer["digest"])
    tar_bytes = gzip.decompress(compressed)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        assert names == {f"data/{n}" for n in ADAPTER_FILES}
        member = tar.extractfile("data/adapter_model.safetensors")
        assert member is not None
        assert member.read() == (lora_adapter / "adapter_model.safetensors").read_bytes()
    config = json.loads(_blob(registry, "adapters/layout", manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]


def test_pushed_image_is_pullable_by_oras(
    registry: Registry, lora_adapter: Path, tmp_path: Path
) -> None:
    import oras.client

    image = f"{registry.host}/adapters/for-oras:1"
    push_adapter(lora_adapter, image)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.pull(target=image, outdir=str(tmp_path / "out"))

    for name in ADAPTER_FILES:
        assert _sha(tmp_path / "out" / "data" / name) == _sha(lora_adapter / name)


def test_pull_accepts_an_oras_file_artifact(
    registry: Registry, lora_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oras.client

    image = f"{registry.host}/adapters/oras-files:1"
    monkeypatch.chdir(lora_adapter)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.push(target=image, files=list(ADAPTER_FILES), quiet=True)

    pulled = pull_adapter(image, tmp_path / "dest")

    assert pulled.files == ADAPTER_FILES
    for name in ADAPTER_FILES:
        assert _sha(tmp_path / "dest" / name) == _sha(lora_adapter / name)


def test_pull_accepts_an_oras_directory_artifact(
    registry: Registry, lora_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oras.client

    image = f"{registry.host}/adapters/oras-dir:1"
    staged = tmp_path / "src" / "my-adapter"
    shutil.copytree(lora_adapter, staged)
    monkeypatch.chdir(staged.parent)
    oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        target=image, files=["my-adapter"], quiet=True
    )

    pulled = pull_adapter(image, tmp_path / "dest")

    assert set(ADAPTER_FILES) <= set(pulled.files)
    assert _sha(tmp_path / "dest" / "adapter_model.safetensors") == _sha(
        lora_adapter / "adapter_model.safetensors"
    )


def test_pull_by_digest(registry: Registry, lora_adapter: Path, tmp_path: Path) -> None:
    digest = push_adapter(lora_adapter, f"{registry.host}/adapters/pinned:1")

    pulled = pull_adapter(f"{registry.host}/adapters/pinned@{digest}", tmp_path / "d")

    assert pulled.digest == digest
    assert pulled.files == ADAPTER_FILES


def test_image_without_adapter_fails_clearly(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oras.client

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "README.md").write_text("not an adapter")
    monkeypatch.chdir(tmp_path / "src")
    image = f"{registry.host}/adapters/readme-only:1"
    oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        target=image, files=["README.md"], quiet=True
    )

    with pytest.raises(NoAdapterError, match=r"holds no adapter \(it holds README.md\)"):
        pull_adapter(image, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_missing_image_is_a_404_with_the_registry_message(
    registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(ImageNotFoundError, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN") as err:
        pull_adapter(f"{registry.host}/adapters/nothing-here:1", tmp_path / "d")
    assert err.value.status == 404


def test_tampered_blob_is_a_digest_mismatch_and_writes_nothing(
    registry: Registry, lora_adapter: Path, tmp_path: Path
) -> None:
    image = f"{registry.host}/adapters/tampered:1"
    push_adapter(lora_adapter, image)
    manifest, _ = _manifest(registry, "adapters/tampered", "1")
    hex_digest = manifest["layers"][0]["digest"].removeprefix("sha256:")
    stored = (
        registry.root
        / "data"
        / "docker"
        / "registry"
        / "v2"
        / "blobs"
        / "sha256"
        / hex_digest[:2]
        / hex_digest
        / "data"
    )
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    with pytest.raises(DigestMismatchError, match=f"named sha256:{hex_digest} hashes to"):
        pull_adapter(image, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_auth_registry_push_and_pull_with_docker_config(
    auth_registry: Registry, lora_adapter: Path, tmp_path: Path
) -> None:
    config = auth_registry.docker_config(tmp_path / "docker" / "config.json")
    # A kubernetes.io/dockerconfigjson secret mounted as a directory, username/password form.
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / ".dockerconfigjson").write_text(
        json.dumps(
            {"auths": {f"https://{auth_registry.host}": {"username": USER, "password": PASSWORD}}}
        )
    )
    image = f"{auth_registry.host}/adapters/private:1"

    digest = push_adapter(lora_adapter, image, docker_config=config)
    pulled = pull_adapter(image, tmp_path / "dest", docker_config=secret_dir)

    assert pulled.digest == digest
    assert _sha(tmp_path / "dest" / "adapter_model.safetensors") == _sha(
        lora_adapter / "adapter_model.safetensors"
    )


def test_wrong_password_is_a_401_naming_the_fix(
    auth_registry: Registry, lora_adapter: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    token = base64.b64encode(f"{USER}:wrong".encode()).decode()
    bad.write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))

    with pytest.raises(AuthenticationError, match=r"\(401: ") as err:
        push_adapter(lora_adapter, f"{auth_registry.host}/adapters/x:1", docker_config=bad)
    assert err.value.status == 401
    assert "check the username/password" in str(err.value)
    with pytest.raises(AuthenticationError, match="pass a docker config with credentials"):
        pull_adapter(f"{auth_registry.host}/adapters/x:1", tmp_path / "d")


def test_cli_pull_failure_exits_non_zero_and_writes_the_termination_log(
    auth_registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("KAITO_TERMINATION_LOG", str(log))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)

    status = adapters_main(["pull", f"{auth_registry.host}/adapters/x:1", str(tmp_path / "d")])

    assert status == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("adapter pull failed: registry")
    assert "401" in err
    assert "\n" not in err
    assert log.read_text() == err


def test_cli_push_and_pull_through_the_module_entry_point(
    auth_registry: Registry, lora_adapter: Path, tmp_path: Path
) -> None:
    config = auth_registry.docker_config(tmp_path / "docker" / "config.json")
    image = f"{auth_registry.host}/adapters/cli:1"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    push = subprocess.run(
        [
            sys.executable,
            "-m",
            "kaito_runtime.adapters",
            "push",
            str(lora_adapter),
            image,
            "--docker-config",
            str(config),
            "--model-name",
            "phi-3-mini-4k-instruct",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert push.returncode == 0, push.stderr
    digest = push.stdout.strip()
    assert digest.startswith("sha256:")
    assert len(digest) == 71

    dest = tmp_path / "mnt" / "adapter" / "cli"
    pull = subprocess.run(
        [
            sys.executable,
            "-m",
            "kaito_runtime.adapters",
            "pull",
            image,
            str(dest),
            "--docker-config",
            str(config.parent),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert pull.returncode == 0, pull.stderr
    assert digest in pull.stdout
    assert _sha(dest / "adapter_config.json") == _sha(lora_adapter / "adapter_config.json")
