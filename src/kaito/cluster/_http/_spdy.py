"""SPDY/3.1 framing, the server's half, for ``kubectl port-forward``: kubectl 1.31+ tunnels the
SPDY port-forward protocol through a WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``),
and SPDY itself is what the kubelet has always spoken to it.

Frames (draft-mbelshe-httpbis-spdy-00, version 3): a control frame is ``1|version(15) type(16)
flags(8) length(24)`` then its fields; a data frame ``0|stream-id(31) flags(8) length(24)`` then
its bytes. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are ``count(32)`` then ``len(32) name
len(32) value`` pairs, compressed with one zlib stream per direction primed with SPDY's
dictionary (values with several parts are joined by NUL).

Flow control (WINDOW_UPDATE) is read and ignored, as Kubernetes' SPDY library does.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

import attrs

__all__ = (
    "HEADER_DICTIONARY",
    "Data",
    "GoAway",
    "Headers",
    "Ping",
    "ProtocolError",
    "RstStream",
    "Settings",
    "SpdyFramer",
    "SynReply",
    "SynStream",
    "WindowUpdate",
)

VERSION = 3
TYPE_SYN_STREAM = 1
TYPE_SYN_REPLY = 2
TYPE_RST_STREAM = 3
TYPE_SETTINGS = 4
TYPE_PING = 6
TYPE_GOAWAY = 7
TYPE_HEADERS = 8
TYPE_WINDOW_UPDATE = 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR = 1
RST_CANCEL = 5
RST_INTERNAL_ERROR = 6

#: Frames whose payload is larger than this end the session (kubectl writes 32 KiB at most).
MAX_FRAME = 1 << 20
#: A decompressed header block larger than this, or with more pairs, ends the session.
MAX_HEADER_BLOCK = 64 * 1024
MAX_HEADER_PAIRS = 64

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)  # fmt: skip
_TAIL = (
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
    b"505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    b"Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    b"Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    b"Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    b"application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    b"gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
HEADER_DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL
"""SPDY/3's zlib dictionary for header blocks (1423 bytes)."""


class ProtocolError(Exception):
    """The peer broke the SPDY protocol (or a limit); the session must end."""


HeaderMap = Mapping[str, list[str]]


@attrs.frozen
class SynStream:
    stream_id: int
    headers: HeaderMap
    fin: bool
    unidirectional: bool


@attrs.frozen
class SynReply:
    stream_id: int
    headers: HeaderMap
    fin: bool


@attrs.frozen
class Headers:
    stream_id: int
    headers: HeaderMap
    fin: bool


@attrs.frozen
class RstStream:
    stream_id: int
    status: int


@attrs.frozen
class Settings:
    values: Mapping[int, int]


@attrs.frozen
class Ping:
    ping_id: int


@attrs.frozen
class GoAway:
    last_good_stream_id: int
    status: int


@attrs.frozen
class WindowUpdate:
    stream_id: int
    delta: int


@attrs.frozen
class Data:
    stream_id: int
    data: bytes
    fin: bool


Frame = SynStream | SynReply | Headers | RstStream | Settings | Ping | GoAway | WindowUpdate | Data


def _header(frame_type: int, flags: int, length: int) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | length)


class SpdyFramer:
    """Parses the frames of a byte stream and writes frames, with the header compression state
    of both directions. Sans I/O: :meth:`feed` takes bytes, the writers return bytes; write
    them in the order they were made (the compressor is stateful)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=HEADER_DICTIONARY)

    # -- reading ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame]:
        """The complete frames ``data`` finishes (the rest is kept for the next call).

        Raises:
            ProtocolError: a malformed frame, another SPDY version, or a limit exceeded.
        """
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} limit")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version} is not supported (only 3)")
                frame = self._control(first & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Data(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
        return frames

    def _control(self, frame_type: int, flags: int, payload: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if frame_type == TYPE_SYN_STREAM:
                stream_id, _ = struct.unpack_from(">II", payload)
                return SynStream(
                    stream_id & 0x7FFFFFFF,
                    self._headers(payload[10:]),
                    fin,
                    bool(flags & 0x02),
                )
            if frame_type in (TYPE_SYN_REPLY, TYPE_HEADERS):
                (stream_id,) = struct.unpack_from(">I", payload)
                kind = SynReply if frame_type == TYPE_SYN_REPLY else Headers
                return kind(stream_id & 0x7FFFFFFF, self._headers(payload[4:]), fin)
            if frame_type == TYPE_RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if frame_type == TYPE_SETTINGS:
                (count,) = struct.unpack_from(">I", payload)
                values = {}
                for index in range(min(count, 64)):
                    flag_id, value = struct.unpack_from(">II", payload, 4 + 8 * index)
                    values[flag_id & 0xFFFFFF] = value
                return Settings(values)
            if frame_type == TYPE_PING:
                (ping_id,) = struct.unpack_from(">I", payload)
                return Ping(ping_id)
            if frame_type == TYPE_GOAWAY:
                last, status = struct.unpack_from(">II", payload)
                return GoAway(last & 0x7FFFFFFF, status)
            if frame_type == TYPE_WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as error:
            raise ProtocolError(f"control frame {frame_type} is truncated") from error
        return None  # unknown control frames are ignored, as the spec asks

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as error:
            raise ProtocolError(f"header block does not decompress: {error}") from error
        if self._inflate.unconsumed_tail:
            raise ProtocolError(f"header block exceeds {MAX_HEADER_BLOCK} bytes")
        try:
            (count,) = struct.unpack_from(">I", raw)
            if count > MAX_HEADER_PAIRS:
                raise ProtocolError(f"{count} header pairs exceed the {MAX_HEADER_PAIRS} limit")
            offset = 4
            headers: dict[str, list[str]] = {}
            for _ in range(count):
                (size,) = struct.unpack_from(">I", raw, offset)
                name = raw[offset + 4 : offset + 4 + size].decode("latin-1").lower()
                offset += 4 + size
                (size,) = struct.unpack_from(">I", raw, offset)
                value = raw[offset + 4 : offset + 4 + size].decode("latin-1")
                offset += 4 + size
                headers.setdefault(name, []).extend(value.split("\0"))
        except struct.error as error:
            raise ProtocolError("header block is truncated") from error
        return headers

    # -- writing ----------------------------------------------------------------------------

    def _block(self, headers: HeaderMap) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for name, values in headers.items():
            key = name.lower().encode("latin-1")
            value = "\0".join(values).encode("latin-1")
            raw += struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: HeaderMap, *, fin: bool = False) -> bytes:
        """A SYN_STREAM (used by tests playing the client)."""
        block = self._block(headers)
        return (
            _header(TYPE_SYN_STREAM, FLAG_FIN if fin else 0, 10 + len(block))
            + struct.pack(">IIBB", stream_id, 0, 0, 0)
            + block
        )

    def syn_reply(self, stream_id: int, headers: HeaderMap, *, fin: bool = False) -> bytes:
        """A SYN_REPLY accepting ``stream_id``."""
        block = self._block(headers)
        return (
            _header(TYPE_SYN_REPLY, FLAG_FIN if fin else 0, 4 + len(block))
            + struct.pack(">I", stream_id)
            + block
        )

    @staticmethod
    def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
        """A DATA frame (``fin`` half-closes the stream)."""
        return struct.pack(
            ">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(payload)
        ) + bytes(payload)

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        """A RST_STREAM."""
        return _header(TYPE_RST_STREAM, 0, 8) + struct.pack(">II", stream_id, status)

    @staticmethod
    def ping(ping_id: int) -> bytes:
        """A PING (answer the peer's with the same id)."""
        return _header(TYPE_PING, 0, 4) + struct.pack(">I", ping_id)

    @staticmethod
    def goaway(last_good_stream_id: int, status: int = 0) -> bytes:
        """A GOAWAY."""
        return _header(TYPE_GOAWAY, 0, 8) + struct.pack(">II", last_good_stream_id, status)
