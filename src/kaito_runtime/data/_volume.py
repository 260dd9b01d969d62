"""Input from a mounted volume: copy its files into the input directory.

Runtime layer (tuning Job init container). When the volume is mounted at the input directory
itself there is nothing to copy. Each file is copied to ``<name>.part`` and renamed when done,
so a restarted container never sees a half-copied file under its final name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import structlog

from kaito_runtime.data._download import FetchedFile
from kaito_runtime.data._errors import FetchError
from kaito_runtime.data._naming import PART_SUFFIX

__all__ = ("copy_volume",)

log = structlog.get_logger(__name__)


def copy_volume(source: Path, dest: Path) -> list[FetchedFile]:
    """Copy the regular files under ``source`` (recursively) into ``dest``; return them.

    Files already present in ``dest`` with the same size are skipped. Hidden files and
    ``.part`` leftovers are ignored.
    """
    if not source.is_dir():
        raise FetchError(
            f"input volume path {str(source)!r} is not a directory; mount the volume there "
            "or pass the right --volume"
        )
    if source.resolve() == dest.resolve():
        files = [p for p in sorted(source.rglob("*")) if _is_data_file(p, source)]
        if not files:
            raise FetchError(f"input volume path {str(source)!r} holds no files; add the dataset")
        log.info("volume_used_in_place", path=str(source), files=len(files))
        return [FetchedFile(url=p.as_uri(), path=p, size=p.stat().st_size) for p in files]
    copied: list[FetchedFile] = []
    for path in sorted(source.rglob("*")):
        if not _is_data_file(path, source):
            continue
        relative = path.relative_to(source)
        target = dest / relative
        size = path.stat().st_size
        if target.exists() and target.stat().st_size == size:
            copied.append(FetchedFile(url=path.as_uri(), path=target, size=size, skipped=True))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + PART_SUFFIX)
        try:
            shutil.copyfile(path, part)
            os.replace(part, target)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise FetchError(
                f"cannot copy {str(path)!r} to {str(target)!r}: {exc.strerror}; "
                "check the volume and the free space of the input directory"
            ) from None
        log.info("volume_file_copied", source=str(path), file=str(target), bytes=size)
        copied.append(FetchedFile(url=path.as_uri(), path=target, size=size))
    if not copied:
        raise FetchError(f"input volume path {str(source)!r} holds no files; add the dataset")
    return copied


def _is_data_file(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    if any(part.startswith(".") for part in relative.parts):
        return False
    return path.is_file() and not path.name.endswith(PART_SUFFIX)
