"""Engine layer: the errors the engine raises and the one a reconciler may raise."""

from __future__ import annotations

from typing import Any

__all__ = ("ApiError", "TerminalError")


class TerminalError(Exception):
    """Raise from a reconcile when retrying cannot help (an invalid spec, say).

    The controller logs it, counts it in ``controller_runtime_terminal_reconcile_errors_total``
    and forgets the key instead of requeueing it; the next change to the object triggers a new
    reconcile as usual.
    """


class ApiError(Exception):
    """An error status from the Kubernetes API (or a watch ``ERROR`` event).

    ``retry_after`` carries the ``Retry-After`` header of a 429 or 503, in seconds.
    """

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.body = body or {}
        super().__init__(f"{status} {reason}: {message}".rstrip(": "))

    @property
    def not_found(self) -> bool:
        """Return whether this is a 404."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """Return whether this is a 409 (already exists, or a stale resourceVersion)."""
        return self.status == 409

    @property
    def gone(self) -> bool:
        """Return whether this is a 410: the requested resourceVersion is too old."""
        return self.status == 410 or self.reason in ("Expired", "Gone")

    @property
    def too_large_resource_version(self) -> bool:
        """Return whether the server has not reached the requested resourceVersion.

        kube-apiserver answers 504 ``Timeout`` with the cause ``ResourceVersionTooLarge``
        (servers before 1.17.0-1.18.5 only say it in the cause's message or the message), as
        client-go's reflector recognises it. It happens when the server's storage was restored
        to an earlier point than versions the client already saw.
        """
        details = self.body.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        for cause in causes if isinstance(causes, list) else ():
            if isinstance(cause, dict) and cause.get("reason") == "ResourceVersionTooLarge":
                return True
        if self.status != 504 and self.reason != "Timeout":
            return False
        for cause in causes if isinstance(causes, list) else ():
            if isinstance(cause, dict) and cause.get("message") == "Too large resource version":
                return True
        return "Too large resource version" in self.message

    @property
    def retriable(self) -> bool:
        """Return whether retrying the same request later may succeed.

        429 and server-side failures (5xx, and status 0 for a watch that ended at once) are;
        client errors (400, 401, 403, 404, ...) and a resourceVersion the server cannot serve
        (410, too large) are not: the request itself must change.
        """
        if self.gone or self.too_large_resource_version:
            return False
        return self.status == 429 or self.status >= 500 or self.status == 0

    @classmethod
    def from_status(
        cls, status: int, body: dict[str, Any] | None, retry_after: float | None = None
    ) -> ApiError:
        """Build from an HTTP status code and a ``Status`` object body (if any)."""
        body = body or {}
        return cls(
            int(body.get("code") or status),
            str(body.get("reason") or ""),
            str(body.get("message") or ""),
            retry_after=retry_after,
            body=body,
        )
