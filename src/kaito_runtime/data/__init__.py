"""Input data for tuning Jobs: download URLs, copy a volume, or pull an image.

Runtime layer: what the tuning Job's init container runs (``python -m kaito_runtime.data
fetch``). It never imports the operator.
"""

from __future__ import annotations

from kaito_runtime.data._download import DEFAULT_MAX_BYTES, FetchedFile, FetchSettings, fetch_urls
from kaito_runtime.data._errors import DownloadError, FetchError, SizeLimitError, UrlRefusedError
from kaito_runtime.data._image import pull_data_image
from kaito_runtime.data._naming import file_name_for, file_names_for
from kaito_runtime.data._policy import GuardedResolver, UrlPolicy
from kaito_runtime.data._volume import copy_volume

__all__ = (
    "DEFAULT_MAX_BYTES",
    "DownloadError",
    "FetchError",
    "FetchSettings",
    "FetchedFile",
    "GuardedResolver",
    "SizeLimitError",
    "UrlPolicy",
    "UrlRefusedError",
    "copy_volume",
    "fetch_urls",
    "file_name_for",
    "file_names_for",
    "pull_data_image",
)
