"""The YAML files users put in parameter ConfigMaps, read with the API server's bounded decoder.

API layer. A ConfigMap's text is the user's: read with ``yaml.safe_load`` a sub-kilobyte alias bomb
expands into gigabytes inside the manager and the admission webhook. Here it is read as the API
server reads bodies (``kaito.apimachinery.decode_yaml``): aliases counted against the size limit,
nesting bounded, errors as :class:`ConfigFileError`.
"""

from __future__ import annotations

from typing import Any, Final

from kaito.apimachinery import MAX_DEPTH, DecodeError, DecodeLimits, decode_yaml

__all__ = ("CONFIG_FILE_LIMITS", "ConfigFileError", "load_config_file")

#: A ConfigMap holds at most 1 MiB (etcd's object limit); what its YAML expands to is held to that.
CONFIG_FILE_LIMITS: Final = DecodeLimits(max_bytes=1024 * 1024, max_depth=MAX_DEPTH)


class ConfigFileError(ValueError):
    """A parameter file that does not decode; the message says why, as the decoder words it."""


def load_config_file(text: str) -> Any:
    """The value of one YAML document from a ConfigMap key (``None`` for an empty one).

    Raises:
        ConfigFileError: malformed YAML, aliases that expand past 1 MiB, or nesting too deep.
    """
    try:
        return decode_yaml(text, CONFIG_FILE_LIMITS).value
    except DecodeError as error:
        raise ConfigFileError(error.message) from None
