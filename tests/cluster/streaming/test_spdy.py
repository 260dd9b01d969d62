"""SPDY/3.1 framing and the port-forward session without kubectl: the header dictionary, header
blocks compressed across frames in both directions, limits, and stream pairs."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from kaito.cluster._http._portforward import PortForwardSession
from kaito.cluster._http._spdy import (
    HEADER_DICTIONARY,
    Data,
    Ping,
    ProtocolError,
    RstStream,
    SpdyFramer,
    SynReply,
    SynStream,
)


def test_the_header_dictionary_is_spdy3s() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2


def test_frames_round_trip_with_one_compression_state_per_direction() -> None:
    client, server = SpdyFramer(), SpdyFramer()
    wire = b"".join(
        client.syn_stream(stream_id, {"streamType": [kind], "port": ["5000"], "requestID": ["0"]})
        for stream_id, kind in ((1, "error"), (3, "data"))
    )
    wire += client.data(3, b"GET / HTTP/1.1\r\n\r\n") + client.data(1, b"", fin=True)
    wire += client.ping(7)
    frames = []
    for index in range(0, len(wire), 5):  # split anywhere, as WebSocket messages may
        frames += server.feed(wire[index : index + 5])
    assert frames == [
        SynStream(1, {"streamtype": ["error"], "port": ["5000"], "requestid": ["0"]}, False, False),
        SynStream(3, {"streamtype": ["data"], "port": ["5000"], "requestid": ["0"]}, False, False),
        Data(3, b"GET / HTTP/1.1\r\n\r\n", False),
        Data(1, b"", True),
        Ping(7),
    ]
    replies = server.syn_reply(1, {}) + server.syn_reply(3, {"x": ["a", "b"]})
    assert client.feed(replies) == [SynReply(1, {}, False), SynReply(3, {"x": ["a", "b"]}, False)]


def test_limits_end_the_session() -> None:
    with pytest.raises(ProtocolError, match="exceeds the 1048576 limit"):
        SpdyFramer().feed(b"\x00\x00\x00\x01\x00\x20\x00\x00")
    with pytest.raises(ProtocolError, match="SPDY version 2 is not supported"):
        SpdyFramer().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")
    with pytest.raises(ProtocolError, match="does not decompress"):
        SpdyFramer().feed(b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01garbage!"[:16])


class _Shouting(anyio.abc.ByteStream):
    """A Pod's port that answers what it is sent in capitals, then closes when the client does."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](4)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._receive.receive()

    async def send(self, item: bytes) -> None:
        await self._send.send(item.upper())

    async def send_eof(self) -> None:
        self._send.close()

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


@pytest.mark.anyio
async def test_a_pair_is_forwarded_and_closed_and_a_lone_stream_times_out() -> None:
    async def connect(port: int) -> anyio.abc.ByteStream:
        assert port == 5000
        return _Shouting()

    client = SpdyFramer()
    headers = {"streamtype": ["error"], "port": ["5000"], "requestid": ["1"]}
    wire = [
        client.syn_stream(1, headers),
        client.syn_stream(3, {**headers, "streamtype": ["data"]}),
        client.data(3, b"hello", fin=True),
        client.syn_stream(5, {**headers, "requestid": ["2"]}),  # its data stream never comes
    ]
    sent: list[bytes] = []
    finished = anyio.Event()
    fins = {SpdyFramer.data(i, b"", fin=True) for i in (1, 3)}

    async def send(data: bytes) -> None:
        sent.append(data)
        if fins <= set(sent) and any(b"timed out" in d for d in sent):
            finished.set()

    async def incoming() -> AsyncIterator[bytes]:
        for chunk in wire:
            yield chunk
        await finished.wait()  # the tunnel stays open until both pairs are done

    session = PortForwardSession(send, connect, pod="p", uid="u", pair_timeout=0)
    with anyio.fail_after(10):
        await session.run(incoming())
    frames = client.feed(b"".join(sent))
    assert SynReply(1, {}, False) in frames and SynReply(5, {}, False) in frames
    assert Data(3, b"HELLO", False) in frames
    assert Data(3, b"", True) in frames and Data(1, b"", True) in frames
    assert Data(5, b"timed out waiting for the data stream", True) in frames
    assert not any(isinstance(f, RstStream) for f in frames)
