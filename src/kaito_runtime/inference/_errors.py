"""Errors of the inference server: start-up configuration errors and per-request errors."""

from __future__ import annotations

__all__ = ("ConfigError", "EngineUnavailableError", "OverloadedError", "RequestError")


class ConfigError(ValueError):
    """A start-up setting is invalid; renders as ``field='value' is invalid: reason; fix``."""

    def __init__(self, field: str, value: object, reason: str, *, fix: str) -> None:
        super().__init__(f"{field}={value!r} is invalid: {reason}; {fix}")
        self.field = field
        self.value = value
        self.fix = fix


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status (400, 404, 413)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code


class OverloadedError(Exception):
    """Too many requests are in flight; answered 429 with ``Retry-After``."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"the server is at its limit of {limit} concurrent requests; retry after "
            f"{retry_after} s"
        )
        self.limit = limit
        self.retry_after = retry_after


class EngineUnavailableError(Exception):
    """The model is not loaded (yet, or any more); answered 503."""
