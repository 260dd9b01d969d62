"""Syntax of image references and data URLs (names and labels are ``kaito.apimachinery``'s).

API layer (pure functions). Each returns a list of problems (empty when valid), so callers can wrap
them in field errors with the path they know.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ("image_reference_problems", "url_problems")

# The docker/distribution reference grammar: [domain[:port]/]path[:tag][@digest].
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_TAG: Final = r"[\w][\w.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE: Final = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_MAX_NAME: Final = 255

_METADATA_HOSTS: Final = frozenset(
    {"metadata.google.internal", "metadata.google", "instance-data.ec2.internal", "metadata"}
)


def image_reference_problems(reference: str) -> list[str]:
    """Problems with ``reference`` as a container image reference (docker/distribution grammar)."""
    if not reference:
        return ["must not be empty"]
    if len(reference) > _MAX_NAME + 200:
        return ["is too long"]
    match = _REFERENCE.match(reference)
    if match is None:
        head = reference.split("@", maxsplit=1)[0]
        if any(c.isupper() for c in head.rsplit(":", 1)[0].split("/", 1)[-1]):
            return ["repository name must be lowercase"]
        return ["invalid reference format (expected [registry/]repository[:tag][@digest])"]
    name = (match["domain"] + "/" if match["domain"] else "") + match["path"]
    if len(name) > _MAX_NAME:
        return [f"repository name must not be more than {_MAX_NAME} characters"]
    return []


def url_problems(url: str, *, allow_local: bool = False) -> list[str]:
    """Problems with ``url`` as a data source: http(s), a host, and not a local/private address.

    Loopback, private, link-local and cloud metadata endpoints are refused (they let a Workspace
    reach inside the cluster's network); ``allow_local`` lifts that for local development.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return [f"is not a valid URL: {exc}"]
    if parts.scheme.lower() not in ("http", "https"):
        return [f"scheme {parts.scheme or '(none)'!r} is not supported; use http or https"]
    host = (parts.hostname or "").lower()
    if not host:
        return ["has no host"]
    if allow_local:
        return []
    if host == "localhost" or host.endswith(".localhost") or host in _METADATA_HOSTS:
        return ["must not target a local or metadata endpoint"]
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return []
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
    ):
        return ["must not target a loopback, private, or link-local address"]
    return []
