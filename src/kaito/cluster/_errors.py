"""API errors rendered as ``meta/v1 Status`` objects, worded as kube-apiserver words them.

Every failure the server reports goes through :class:`StatusError`; the HTTP layer turns it into a
response with the status code and the ``Status`` body, and the in-process client raises it as is.
Field-level problems are :class:`kaito.apimachinery.FieldError` values (``invalid`` turns them
into a 422 with one ``StatusCause`` each).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kaito.apimachinery import FieldError, invalid_message
from kaito.cluster._json import Obj

__all__ = (
    "StatusError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "internal_error",
    "invalid",
    "method_not_supported",
    "not_acceptable",
    "not_found",
    "qualified_resource",
    "too_large",
    "too_many_requests",
    "unauthorized",
    "unsupported_media_type",
)


class StatusError(Exception):
    """A request failure carrying its HTTP code and ``meta/v1 Status`` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        """The ``Status`` object sent to the client."""
        status: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            status["reason"] = self.reason
        if self.details:
            status["details"] = self.details
        status["code"] = self.code
        return status

    def __repr__(self) -> str:
        return f"StatusError({self.code}, {self.reason!r}, {self.message!r})"


def qualified_resource(group: str, resource: str) -> str:
    """``workspaces.kaito.sh`` or ``pods`` (the core group has no suffix)."""
    return f"{resource}.{group}" if group else resource


def _details(group: str, resource: str, name: str, **extra: Any) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    details.update(extra)
    return details


def not_found(group: str, resource: str, name: str) -> StatusError:
    """404 ``NotFound``: ``workspaces.kaito.sh "x" not found``."""
    qualified = qualified_resource(group, resource)
    message = f'{qualified} "{name}" not found' if name else f"{qualified} not found"
    return StatusError(404, "NotFound", message, _details(group, resource, name))


def already_exists(group: str, resource: str, name: str) -> StatusError:
    """409 ``AlreadyExists``."""
    qualified = qualified_resource(group, resource)
    return StatusError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        _details(group, resource, name),
    )


def conflict(group: str, resource: str, name: str, detail: str) -> StatusError:
    """409 ``Conflict``: ``Operation cannot be fulfilled on ...``."""
    qualified = qualified_resource(group, resource)
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {detail}',
        _details(group, resource, name),
    )


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(group: str, kind: str, name: str, errors: Sequence[FieldError]) -> StatusError:
    """422 ``Invalid`` with ``details.causes``, one per field error."""
    qualified_kind = f"{kind}.{group}" if group else kind
    details = _details(group, kind, name, causes=[e.cause() for e in errors])
    return StatusError(422, "Invalid", invalid_message(qualified_kind, name, errors), details)


def bad_request(message: str) -> StatusError:
    """400 ``BadRequest``."""
    return StatusError(400, "BadRequest", message)


def forbidden(
    group: str, resource: str, name: str, detail: str, *, causes: Iterable[Obj] = ()
) -> StatusError:
    """403 ``Forbidden``."""
    qualified = qualified_resource(group, resource)
    subject = f'{qualified} "{name}"' if name else qualified
    details = _details(group, resource, name)
    if causes:
        details["causes"] = list(causes)
    return StatusError(403, "Forbidden", f"{subject} is forbidden: {detail}", details)


def expired(message: str) -> StatusError:
    """410 ``Expired`` (a resource version or continue token older than the kept history)."""
    return StatusError(410, "Expired", message)


def too_large(limit: int) -> StatusError:
    """413 ``RequestEntityTooLarge``."""
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str, accepted: Sequence[str]) -> StatusError:
    """415 ``UnsupportedMediaType``."""
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def not_acceptable(accepted: Sequence[str]) -> StatusError:
    """406 ``NotAcceptable``."""
    return StatusError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: {', '.join(accepted)}",
    )


def method_not_supported(group: str, resource: str, verb: str) -> StatusError:
    """405 ``MethodNotAllowed``."""
    qualified = qualified_resource(group, resource)
    return StatusError(
        405,
        "MethodNotAllowed",
        f"{verb} is not supported on resources of kind {qualified!r}",
        _details(group, resource, ""),
    )


def unauthorized() -> StatusError:
    """401 ``Unauthorized``."""
    return StatusError(401, "Unauthorized", "Unauthorized")


def too_many_requests(retry_after: int) -> StatusError:
    """429 ``TooManyRequests`` with a ``Retry-After`` header."""
    return StatusError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def internal_error(detail: str) -> StatusError:
    """500 ``InternalError``."""
    return StatusError(
        500,
        "InternalError",
        f"Internal error occurred: {detail}",
        {"causes": [{"message": detail}]},
    )
