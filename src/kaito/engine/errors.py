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
        return self.status == 410

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
