"""Parsing of image references (``host[:port]/repo[:tag][@sha256:...]``), as docker does."""

from __future__ import annotations

import re

import attrs

from kaito_runtime.oci._errors import InvalidReferenceError

__all__ = ("ImageReference", "parse_reference")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


@attrs.frozen
class ImageReference:
    """A parsed image reference: registry host, repository, and a tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Return the host serving the distribution API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """Return what names the manifest in the API path: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse ``text`` into an :class:`ImageReference`; the tag defaults to ``latest``.

    Raises:
        InvalidReferenceError: the reference is malformed (the message says which part).
    """
    raw = text.strip()
    if not raw:
        raise InvalidReferenceError("image reference is empty; use host/repository:tag")
    for scheme in ("oci://", "docker://", "http://", "https://"):
        if raw.startswith(scheme):
            raw = raw[len(scheme) :]
    digest: str | None = None
    if "@" in raw:
        raw, digest = raw.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReferenceError(
                f"image reference {text!r} has digest {digest!r}; use @sha256:<64 hex digits>"
            )
    registry = DOCKER_HUB
    first, _, rest = raw.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, raw = first, rest
    tag: str | None = None
    last_slash = raw.rfind("/")
    colon = raw.rfind(":")
    if colon > last_slash:
        raw, tag = raw[:colon], raw[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReferenceError(
                f"image reference {text!r} has tag {tag!r}; tags are letters, digits, '_', '.', "
                "'-' (at most 128)"
            )
    if registry == DOCKER_HUB and "/" not in raw:
        raw = f"library/{raw}"
    if not raw or not all(_COMPONENT.match(part) for part in raw.split("/")):
        raise InvalidReferenceError(
            f"image reference {text!r} has repository {raw!r}; use lowercase path components "
            "such as myregistry.azurecr.io/adapters/phi-3-adapter:0.0.1"
        )
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry=registry, repository=raw, tag=tag, digest=digest)
