"""Request body limits (size 413, time 408), then admission (429 with Retry-After).

ASGI middleware around the generation routes. The body is read first, before the request counts
against the concurrency limit, as servers behind nginx (which buffers bodies) and vLLM's see it:
a client trickling its body a byte at a time holds a connection, never an admission slot. It
has ``body_read_timeout`` seconds to send the whole body, then gets 408 and the connection is
closed. A body over the limit is refused without parsing it. An admitted request holds its slot
for its whole life, streaming included, and gives it back however it ends.
"""

from __future__ import annotations

from typing import Literal

import anyio

from kaito_runtime.inference._asgi import ASGIApp, Message, Receive, Scope, Send, send_error
from kaito_runtime.inference._metrics import ServerMetrics

__all__ = ("AdmissionGate", "LimitsMiddleware")

BodyOutcome = Literal["read", "too_large", "timeout", "gone"]


class AdmissionGate:
    """A non-blocking counting gate: at most ``capacity`` requests in flight, no queue beyond.

    Refusing at once (instead of queueing without bound) keeps memory bounded under bursts; the
    client retries after ``Retry-After``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.in_flight = 0

    def try_enter(self) -> bool:
        """Take a slot if one is free; return whether it was taken."""
        if self.in_flight >= self.capacity:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Give a slot back."""
        self.in_flight -= 1


class LimitsMiddleware:
    """Read the body within its size and time limits, then admit the request (``paths`` only)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: frozenset[str],
        gate: AdmissionGate,
        max_body_bytes: int,
        body_read_timeout: float,
        retry_after: int,
        metrics: ServerMetrics,
    ) -> None:
        self.app = app
        self.paths = paths
        self.gate = gate
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout = body_read_timeout
        self.retry_after = retry_after
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(path, send)
            return
        body, outcome = await self._read_body(receive)
        if outcome == "too_large":
            await self._too_large(path, send)
            return
        if outcome == "timeout":
            self.metrics.rejected.labels("body_timeout").inc()
            message = (
                f"the request body was not received within {self.body_read_timeout:g} s "
                "(--body-read-timeout); send it at once"
            )
            await send_error(
                send, path, 408, message, "invalid_request_error", code="body_timeout", close=True
            )
            return
        if outcome == "gone":
            return
        if not self.gate.try_enter():
            self.metrics.rejected.labels("overloaded").inc()
            message = (
                f"the server is at its limit of {self.gate.capacity} concurrent requests; "
                f"retry after {self.retry_after} s"
            )
            await send_error(
                send,
                path,
                429,
                message,
                "rate_limit_error",
                code="overloaded",
                headers=[(b"retry-after", str(self.retry_after).encode())],
            )
            return
        try:
            self.metrics.in_flight.inc()
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.gate.leave()
            self.metrics.in_flight.dec()

    async def _read_body(self, receive: Receive) -> tuple[bytes, BodyOutcome]:
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.body_read_timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return b"", "gone"  # the client disconnected mid-body
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    return b"", "too_large"
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks), "read"
        return b"", "timeout"

    async def _too_large(self, path: str, send: Send) -> None:
        self.metrics.rejected.labels("body_too_large").inc()
        message = (
            f"request body is larger than the {self.max_body_bytes}-byte limit "
            "(--max-body-bytes); send a shorter prompt"
        )
        await send_error(
            send, path, 413, message, "invalid_request_error", code="body_too_large", close=True
        )
