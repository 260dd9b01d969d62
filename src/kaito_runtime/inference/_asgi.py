"""ASGI types and the error responses the server's middleware sends itself.

Errors are JSON in the shape of the route: OpenAI's ``{"error": {...}}`` on ``/v1/...``, the
legacy ``{"detail": ...}`` elsewhere. The JSON is ASCII-escaped, so no text a client sent (a
lone surrogate included) can make encoding the error fail.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

__all__ = (
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "error_body",
    "error_bytes",
    "send_error",
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(
    path: str, message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Return the error body for a route: OpenAI's shape on ``/v1/...``, ``detail`` elsewhere."""
    if path.startswith("/v1/"):
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return {"detail": message}


def error_bytes(body: dict[str, Any]) -> bytes:
    """Encode an error body as ASCII JSON (safe for any text a client sent)."""
    return json.dumps(body, ensure_ascii=True).encode("ascii")


async def send_error(
    send: Send,
    path: str,
    status: int,
    message: str,
    kind: str,
    *,
    code: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    close: bool = False,
) -> None:
    """Send a JSON error response; ``close`` ends the connection after it (body left unread)."""
    payload = error_bytes(error_body(path, message, kind, code=code))
    extra = [*headers, (b"connection", b"close")] if close else list(headers)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
