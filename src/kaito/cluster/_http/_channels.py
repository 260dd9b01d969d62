"""The remote-command channel protocol over a WebSocket (``kubectl exec`` and ``attach``): every
message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize), the rest is
that channel's data. ``v5.channel.k8s.io`` adds channel 255, *close*: ``[255, n]`` half-closes
channel ``n`` (kubectl sends ``[255, 0]`` when its stdin ends). ``v4.base64.channel.k8s.io``
sends text messages, the channel as an ASCII digit and the data in base64.

The error channel carries one ``Status`` as JSON when the command ends: ``Success``, or
``Failure`` with reason ``NonZeroExitCode`` and the exit code as the ``ExitCode`` cause."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator

import attrs
from aiohttp import WSMsgType, web

from kaito.cluster._json import Obj, dumps, loads

__all__ = (
    "CLOSE",
    "ERROR",
    "REMOTE_COMMAND_PROTOCOLS",
    "RESIZE",
    "STDERR",
    "STDIN",
    "STDOUT",
    "ChannelSocket",
    "Incoming",
    "exit_status",
    "requested_protocols",
    "success_status",
    "terminal_sizes",
)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
REMOTE_COMMAND_PROTOCOLS = (V5, V4, V4_BASE64)


def requested_protocols(request: web.BaseRequest) -> list[str]:
    """The subprotocols a WebSocket request offers, in the client's order."""
    offered: list[str] = []
    for header in request.headers.getall("Sec-WebSocket-Protocol", []):
        offered.extend(p.strip() for p in header.split(",") if p.strip())
    return offered


def success_status() -> Obj:
    """The error channel's ``Status`` for a command that succeeded."""
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int) -> Obj:
    """The error channel's ``Status`` for a command that exited with ``code`` (not 0)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: command terminated with exit "
        f"code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


@attrs.frozen
class Incoming:
    """One message from the client: ``channel`` and its data (for ``CLOSE``, the channel
    closed)."""

    channel: int
    data: bytes


class ChannelSocket:
    """A prepared WebSocket speaking the channel protocol ``protocol``."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._base64 = protocol == V4_BASE64

    @property
    def supports_close(self) -> bool:
        """Whether the client can half-close channels (``v5``)."""
        return self.protocol == V5

    async def write(self, channel: int, data: bytes) -> None:
        """Send ``data`` on ``channel``."""
        if self._base64:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    async def write_status(self, status: Obj) -> None:
        """Send the final ``Status`` on the error channel."""
        await self.write(ERROR, dumps(status))

    async def messages(self) -> AsyncIterator[Incoming]:
        """The client's messages until it closes the socket."""
        async for message in self.ws:
            if message.type == WSMsgType.BINARY and not self._base64:
                raw: bytes = message.data
                if not raw:
                    continue
                if raw[0] == CLOSE and self.supports_close:
                    if len(raw) == 2:
                        yield Incoming(CLOSE, raw[1:])
                    continue
                yield Incoming(raw[0], raw[1:])
            elif message.type == WSMsgType.TEXT and self._base64:
                text: str = message.data
                if not text:
                    continue
                try:
                    data = base64.b64decode(text[1:], validate=True)
                except (binascii.Error, ValueError):
                    continue
                yield Incoming(ord(text[0]) - ord("0"), data)
            elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                return


def terminal_sizes(data: bytes) -> list[tuple[int, int]]:
    """``(width, height)`` of each ``{"Width": W, "Height": H}`` document in a resize message."""
    sizes = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            size = loads(line)
        except ValueError:
            continue
        if isinstance(size, dict):
            width, height = size.get("Width"), size.get("Height")
            if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
                sizes.append((min(width, 65535), min(height, 65535)))
    return sizes
