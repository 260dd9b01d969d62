"""Giving memory back to the operating system after a large request body.

CPython frees a decoded multi-megabyte body when the request ends, but glibc keeps the freed heap
for reuse, so the server's RSS would stay at its high-water mark. After such a request the server
asks glibc to return free memory (``malloc_trim``); elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Final

__all__ = ("LARGE_BODY", "release_free_memory")

LARGE_BODY: Final = 1024 * 1024
"""Bodies at least this large are followed by :func:`release_free_memory`."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM: Final = _malloc_trim()


def release_free_memory() -> None:
    """Return the allocator's free memory to the operating system (glibc only)."""
    if _TRIM is not None:
        _TRIM(0)
