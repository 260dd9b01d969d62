"""Misbehaving HTTP/1.1 clients on raw TCP: a body trickled a byte at a time, a client that hangs up.

httpx cannot pace a body or vanish mid-request; these speak HTTP over an anyio TCP stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import attrs

__all__ = ("Answer", "abandon", "request_head", "trickle")


@attrs.frozen
class Answer:
    """What a raw client got: the status (None if the server never answered), the body, when."""

    status: int | None
    body: bytes
    seconds: float
    sent_bytes: int


def request_head(path: str, length: int) -> bytes:
    """The head of a JSON POST of ``length`` bytes."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: kaito\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _read_answer(stream: anyio.abc.ByteStream) -> tuple[int | None, bytes]:
    data = b""
    while True:
        try:
            chunk = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                break
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def trickle(
    host: str, port: int, path: str, payload: dict[str, Any], *, interval: float
) -> Answer:
    """Send the head, then the body one byte every ``interval`` s until the server answers."""
    body = json.dumps(payload).encode()
    started = time.monotonic()
    sent = 0
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(request_head(path, len(body)))
        answer: tuple[int | None, bytes] = (None, b"")
        async with anyio.create_task_group() as tg:

            async def drip() -> None:
                nonlocal sent
                for byte in body:
                    try:
                        await stream.send(bytes([byte]))
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        return
                    sent += 1
                    await anyio.sleep(interval)

            async def listen() -> None:
                nonlocal answer
                answer = await _read_answer(stream)
                tg.cancel_scope.cancel()

            tg.start_soon(drip)
            tg.start_soon(listen)
    return Answer(answer[0], answer[1], time.monotonic() - started, sent)


async def abandon(
    host: str, port: int, path: str, payload: dict[str, Any], *, when: Callable[[], Awaitable[None]]
) -> None:
    """Send a whole request, wait for ``when()`` to return, then close the connection unanswered."""
    body = json.dumps(payload).encode()
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(request_head(path, len(body)) + body)
        await when()
