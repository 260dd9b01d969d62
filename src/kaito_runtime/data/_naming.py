"""File names for downloaded inputs: from the URL path, safe, and unique in one directory.

Runtime layer (tuning Job init container).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

__all__ = ("PART_SUFFIX", "file_name_for", "file_names_for")

PART_SUFFIX = ".part"
DEFAULT_NAME = "download"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def file_name_for(url: str) -> str:
    """Return the file name for ``url``: its last path segment, query and fragment stripped.

    The name is percent-decoded and reduced to ``[A-Za-z0-9._+-]`` (other runs become ``_``);
    it never starts with a dot, never ends in ``.part``, and falls back to ``download``.
    """
    segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", segment).lstrip(".")
    if name.endswith(PART_SUFFIX):
        name = name[: -len(PART_SUFFIX)] + "_part"
    return name[:200] or DEFAULT_NAME


def _with_counter(name: str, n: int) -> str:
    stem, dot, ext = name.partition(".")
    return f"{stem}-{n}{dot}{ext}"


def file_names_for(urls: Sequence[str]) -> list[str]:
    """Return one unique file name per URL, in order; repeats get ``-1``, ``-2``... suffixes.

    The result depends only on the list, so a restarted init container picks the same names and
    finds the files it already completed.
    """
    taken: set[str] = set()
    names: list[str] = []
    for url in urls:
        base = file_name_for(url)
        name, n = base, 0
        while name in taken:
            n += 1
            name = _with_counter(base, n)
        taken.add(name)
        names.append(name)
    return names
