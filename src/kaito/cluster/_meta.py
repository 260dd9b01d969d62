"""Server-assigned metadata: timestamps, uids and generated names.

The validation of ``metadata`` (names, labels, annotations) is ``kaito.apimachinery``'s.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable

__all__ = ("TimeSource", "format_time", "generate_name_suffix", "new_uid", "system_clock")

TimeSource = Callable[[], dt.datetime]
"""Returns the current UTC time; injected so tests control timestamps."""


def system_clock() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 with second precision, as ``metav1.Time`` serialises."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    """A random ``metadata.uid``."""
    return str(uuid.uuid4())


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name_suffix() -> str:
    """The five random characters kube-apiserver appends to ``generateName``."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
