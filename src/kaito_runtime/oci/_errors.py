"""Errors of the OCI adapter artifact layer: one line each, naming what failed and the fix."""

from __future__ import annotations

__all__ = (
    "AuthenticationError",
    "DigestMismatchError",
    "DockerConfigError",
    "ImageNotFoundError",
    "InvalidReferenceError",
    "NoAdapterError",
    "OCIError",
    "RegistryError",
)


class OCIError(Exception):
    """Base of every error a push or pull reports; ``str()`` is one line a user can act on."""


class InvalidReferenceError(OCIError, ValueError):
    """The image reference cannot be parsed."""


class DockerConfigError(OCIError):
    """The docker config (``imagePushSecret`` / ``imagePullSecrets``) cannot be read."""


class RegistryError(OCIError):
    """The registry refused a request; carries the HTTP status and the registry's own message."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(RegistryError):
    """The registry answered 401 or 403: credentials are missing, wrong, or lack the scope."""


class ImageNotFoundError(RegistryError):
    """The registry answered 404 for the repository, tag or blob."""


class NoAdapterError(OCIError):
    """The image holds no adapter (``adapter_config.json`` and adapter weights)."""


class DigestMismatchError(OCIError):
    """Content fetched from the registry does not hash to the digest that names it."""
