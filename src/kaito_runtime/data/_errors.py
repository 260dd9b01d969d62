"""Errors of the input fetch: each names the URL or path and what to change.

Runtime layer (tuning Job init container).
"""

from __future__ import annotations

from kaito_runtime.tuning import InputError

__all__ = ("DownloadError", "FetchError", "SizeLimitError", "UrlRefusedError")


class FetchError(InputError):
    """The input data could not be fetched."""


class UrlRefusedError(FetchError):
    """The URL's scheme or host is not allowed (private, loopback, metadata...)."""


class DownloadError(FetchError):
    """The server could not be reached or answered with an error, after the retries."""


class SizeLimitError(FetchError):
    """The file is larger than the configured size cap."""
