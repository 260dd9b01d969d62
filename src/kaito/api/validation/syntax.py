"""Syntax checks Kubernetes applies to names, labels, image references and data URLs.

API layer (pure functions). Each returns a list of problems (empty when valid), worded as
Kubernetes words them, so callers can wrap them in field errors with the path they know.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

__all__ = (
    "dns1123_label_problems",
    "dns1123_subdomain_problems",
    "image_reference_problems",
    "label_key_problems",
    "label_value_problems",
    "url_problems",
)

# kube-apiserver's patterns and messages (k8s.io/apimachinery/pkg/util/validation), word for word,
# so names are refused here exactly as the API server refuses them.
DNS1123_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN: Final = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
QUALIFIED_NAME: Final = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE: Final = r"(" + QUALIFIED_NAME + r")?"
_RE_LABEL: Final = re.compile(DNS1123_LABEL)
_RE_SUBDOMAIN: Final = re.compile(DNS1123_SUBDOMAIN)
_RE_QUALIFIED: Final = re.compile(QUALIFIED_NAME)
_RE_LABEL_VALUE: Final = re.compile(LABEL_VALUE)
_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{DNS1123_SUBDOMAIN}')"
)
_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    f"used for validation is '{DNS1123_LABEL}')"
)
_QUALIFIED_MSG: Final = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{QUALIFIED_NAME}')"
)
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{LABEL_VALUE}')"
)

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


def dns1123_label_problems(value: str, *, max_length: int = 63) -> list[str]:
    """Problems with ``value`` as an RFC 1123 label (names of containers, volumes, Workspaces)."""
    problems = []
    if len(value) > max_length:
        problems.append(f"must be no more than {max_length} characters")
    if not _RE_LABEL.fullmatch(value):
        problems.append(_LABEL_MSG)
    return problems


def dns1123_subdomain_problems(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1123 subdomain (names of ConfigMaps, Secrets)."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _RE_SUBDOMAIN.fullmatch(value):
        problems.append(_SUBDOMAIN_MSG)
    return problems


def label_key_problems(key: str) -> list[str]:
    """Problems with ``key`` as a qualified name, e.g. a label key (``[prefix/]name``)."""
    problems: list[str] = []
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return ["prefix part must be non-empty"]
    if prefix:
        problems.extend("prefix part " + p for p in dns1123_subdomain_problems(prefix))
    if not name:
        problems.append("name part must be non-empty")
    else:
        if len(name) > 63:
            problems.append("name part must be no more than 63 characters")
        if not _RE_QUALIFIED.fullmatch(name):
            problems.append(_QUALIFIED_MSG)
    return problems


def label_value_problems(value: str) -> list[str]:
    """Problems with ``value`` as a label value."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _RE_LABEL_VALUE.fullmatch(value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


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
