"""Server-wide admission (429 with Retry-After) and the request body size limit (413).

Both are ASGI middleware around the generation routes, so a slot is held for the whole life of a
request, streaming included, and released however the request ends. The body is read (up to the
limit) before the application sees it, so an oversized body is refused without parsing it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kaito_runtime.inference.metrics import ServerMetrics

__all__ = ("AdmissionGate", "LimitsMiddleware", "MetricsMiddleware")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _error_body(path: str, message: str, kind: str, code: str) -> dict[str, Any]:
    if path.startswith("/v1/"):
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"detail": message}


class LimitsMiddleware:
    """Apply the body size limit and the admission gate to ``paths`` (POST generation routes)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: frozenset[str],
        gate: AdmissionGate,
        max_body_bytes: int,
        retry_after: int,
        metrics: ServerMetrics,
    ) -> None:
        self.app = app
        self.paths = paths
        self.gate = gate
        self.max_body_bytes = max_body_bytes
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
        if not self.gate.try_enter():
            self.metrics.rejected.labels("overloaded").inc()
            message = (
                f"the server is at its limit of {self.gate.capacity} concurrent requests; "
                f"retry after {self.retry_after} s"
            )
            await _send_json(
                send,
                429,
                _error_body(path, message, "rate_limit_error", "overloaded"),
                [(b"retry-after", str(self.retry_after).encode())],
            )
            return
        try:
            self.metrics.in_flight.inc()
            body = await self._read_body(receive)
            if body is None:
                await self._too_large(path, send)
                return
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

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, path: str, send: Send) -> None:
        self.metrics.rejected.labels("body_too_large").inc()
        message = (
            f"request body is larger than the {self.max_body_bytes}-byte limit; send a shorter "
            "prompt"
        )
        await _send_json(
            send, 413, _error_body(path, message, "invalid_request_error", "body_too_large"), []
        )


class MetricsMiddleware:
    """Count every response by route and status, and time it until its last byte."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: frozenset[str],
        metrics: ServerMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"
        started = self.clock()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(self.clock() - started)
