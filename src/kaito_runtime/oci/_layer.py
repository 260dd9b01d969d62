"""The adapter image layer: a tar+gzip holding ``data/<adapter files>``, as upstream KAITO pushes.

Packing is reproducible (fixed mtimes, owners and modes; gzip header without a timestamp), so the
same adapter always gives the same layer digest. Unpacking streams, hashes the uncompressed tar
(the image config's ``diff_id``) and refuses entries that would escape the destination.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Literal

import attrs

from kaito_runtime.oci._errors import NoAdapterError, OCIError

__all__ = (
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "DATA_DIR",
    "LayerKind",
    "PackedLayer",
    "adapter_files",
    "pack_adapter_layer",
    "sniff_layer",
    "unpack_layer",
)

LayerKind = Literal["tar", "tar+gzip", "zstd", "file"]

DATA_DIR = "data"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
CHUNK = 1 << 20


@attrs.frozen
class PackedLayer:
    """A packed layer on disk: compressed digest and size, and the uncompressed ``diff_id``."""

    path: Path
    digest: str
    size: int
    diff_id: str


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        self.hash.update(view)
        self.size += len(view)
        self._sink.write(view)
        return len(view)


class _HashingReader(io.RawIOBase):
    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        self.hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self._source.read(CHUNK):
            pass


def adapter_files(directory: Path) -> list[Path]:
    """Return the files of the adapter in ``directory`` that an image carries: config + weights.

    Raises:
        NoAdapterError: ``adapter_config.json`` or the weights file is missing.
    """
    config = directory / ADAPTER_CONFIG
    weights = next((directory / n for n in ADAPTER_WEIGHTS if (directory / n).is_file()), None)
    if not config.is_file() or weights is None:
        present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise NoAdapterError(
            f"directory {str(directory)!r} holds no adapter (needs {ADAPTER_CONFIG} and "
            f"{ADAPTER_WEIGHTS[0]}; found {present or 'nothing'}); point at the directory "
            "PEFT save_pretrained wrote"
        )
    return [config, weights]


def _add_file(tar: tarfile.TarFile, source: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = source.stat().st_size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = "root"
    with source.open("rb") as handle:
        tar.addfile(info, handle)


def pack_adapter_layer(directory: Path, out_dir: Path) -> PackedLayer:
    """Pack the adapter in ``directory`` into ``out_dir/layer.tar.gz`` (``data/`` prefix)."""
    files = adapter_files(directory)
    path = out_dir / "layer.tar.gz"
    with path.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
            uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo(DATA_DIR)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = 0
                info.uname = info.gname = "root"
                tar.addfile(info)
                for source in files:
                    _add_file(tar, source, f"{DATA_DIR}/{source.name}")
    return PackedLayer(
        path=path,
        digest="sha256:" + compressed.hash.hexdigest(),
        size=compressed.size,
        diff_id="sha256:" + uncompressed.hash.hexdigest(),
    )


def _is_tar_header(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def sniff_layer(blob: Path) -> LayerKind:
    """Tell a layer's format from its content (media types lie: oras types plain files as tar)."""
    with blob.open("rb") as raw:
        head = raw.read(512)
        if head.startswith(b"\x28\xb5\x2f\xfd"):
            return "zstd"
        if head.startswith(b"\x1f\x8b"):
            raw.seek(0)
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                    inner = gz.read(512)
            except (gzip.BadGzipFile, zlib.error, EOFError):
                return "file"
            return "tar+gzip" if _is_tar_header(inner) else "file"
    return "tar" if _is_tar_header(head) else "file"


def _safe_relative(name: str) -> PurePosixPath | None:
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".", "/")]
    if not parts or any(p == ".." for p in parts) or parts[-1].startswith(".wh."):
        return None
    return PurePosixPath(*parts)


def unpack_layer(blob: Path, destination: Path, *, gzipped: bool) -> str:
    """Extract the regular files of a tar (or tar+gzip) layer under ``destination``.

    Entries that are not regular files, whiteouts, and paths escaping ``destination`` are
    skipped. Returns the ``sha256:`` digest of the uncompressed tar (the layer's ``diff_id``).
    """
    with blob.open("rb") as raw:
        stream: IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw  # type: ignore[assignment]
        )
        reader = _HashingReader(stream)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    relative = _safe_relative(member.name)
                    if relative is None or not member.isfile():
                        continue
                    target = destination.joinpath(*relative.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    with target.open("wb") as out:
                        while chunk := source.read(CHUNK):
                            out.write(chunk)
            reader.drain()
        except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as err:
            raise OCIError(f"layer {blob.name} is not a readable tar archive ({err})") from err
    return "sha256:" + reader.hash.hexdigest()
