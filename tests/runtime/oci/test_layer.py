"""The adapter layer packs reproducibly and unpacks safely."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from kaito_runtime.adapters import write_termination_message
from kaito_runtime.oci import NoAdapterError
from kaito_runtime.oci._layer import pack_adapter_layer, sniff_layer, unpack_layer


def _adapter(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (directory / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    (directory / "README.md").write_text("not packed")
    return directory


def test_pack_is_reproducible_and_unpacks_to_the_same_files(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "a")
    (tmp_path / "o1").mkdir()
    (tmp_path / "o2").mkdir()
    first = pack_adapter_layer(adapter, tmp_path / "o1")
    second = pack_adapter_layer(adapter, tmp_path / "o2")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)
    assert first.digest == "sha256:" + hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert sniff_layer(first.path) == "tar+gzip"

    diff_id = unpack_layer(first.path, tmp_path / "out", gzipped=True)

    assert diff_id == first.diff_id
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


def test_pack_refuses_a_directory_without_an_adapter(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoAdapterError, match=r"needs adapter_config\.json"):
        pack_adapter_layer(tmp_path / "empty", tmp_path)


def test_unpack_skips_entries_escaping_the_destination(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../escape.txt", "/abs/evil.txt", "data/ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("data/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip.compress(buffer.getvalue()))

    unpack_layer(blob, tmp_path / "out", gzipped=True)

    assert not (tmp_path / "escape.txt").exists()
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == [
        "abs",
        "abs/evil.txt",
        "data",
        "data/ok.txt",
    ]


def test_termination_message_is_one_line_capped_at_4096_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "termination-log"
    monkeypatch.setenv("KAITO_TERMINATION_LOG", str(target))

    assert write_termination_message("first line\nsecond " + "é" * 5000) == target

    text = target.read_text()
    assert "\n" not in text
    assert text.startswith("first line second é")
    assert len(text.encode()) <= 4096
