"""The kubelet's side of the SPDY port-forward protocol (``portforward.k8s.io``), spoken through
a WebSocket tunnel: for each forwarded connection the client opens an *error* stream and a
*data* stream with the same ``requestID`` (headers ``streamType``, ``port``, ``requestID``); once
both are open the server connects to the Pod's port and copies bytes both ways over the data
stream. A failure to connect is written to the error stream as text; when the copy ends, both
streams are closed (FIN), as the kubelet does."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.abc
import attrs
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from kaito.cluster._http._spdy import (
    RST_PROTOCOL_ERROR,
    Data,
    GoAway,
    Ping,
    ProtocolError,
    RstStream,
    SpdyFramer,
    SynStream,
)

__all__ = ("PortForwardSession",)

log = structlog.get_logger(__name__)

Connect = Callable[[int], Awaitable[anyio.abc.ByteStream]]
"""``connect(port)`` -> a connection to the Pod's port (raises ``OSError``)."""

#: kubectl waits this long for a stream's reply; the kubelet waits as long for its pair.
STREAM_PAIR_TIMEOUT = 30.0
MAX_STREAMS = 256
_CHUNK = 32 * 1024


@attrs.define
class _Stream:
    stream_id: int
    kind: str
    port: int
    request_id: str
    send: MemoryObjectSendStream[bytes]
    receive: MemoryObjectReceiveStream[bytes]
    closed: bool = False
    """We sent FIN."""
    reset: bool = False


@attrs.define
class _Pair:
    error: _Stream | None = None
    data: _Stream | None = None
    ready: anyio.Event = attrs.field(factory=anyio.Event)
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)


class PortForwardSession:
    """One ``kubectl port-forward`` connection to one Pod."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        connect: Connect,
        *,
        pod: str,
        uid: str,
        pair_timeout: float = STREAM_PAIR_TIMEOUT,
    ) -> None:
        self._send_raw = send
        self._connect = connect
        self._pod = pod
        self._uid = uid
        self._pair_timeout = pair_timeout
        self._framer = SpdyFramer()
        self._lock = anyio.Lock()
        self._streams: dict[int, _Stream] = {}
        self._pairs: dict[str, _Pair] = {}

    async def _send(self, make: Callable[[], bytes]) -> None:
        async with self._lock:  # header compression state follows the order frames are sent
            await self._send_raw(make())

    async def run(self, incoming: AsyncIterator[bytes]) -> None:
        """Serve frames from ``incoming`` (the tunnel's binary messages) until it ends."""
        async with anyio.create_task_group() as tg:
            try:
                async for chunk in incoming:
                    for frame in self._framer.feed(chunk):
                        if isinstance(frame, GoAway):
                            return
                        await self._handle(frame, tg)
            except ProtocolError as error:
                log.warning("portforward_protocol_error", pod=self._pod, error=str(error))
                with contextlib.suppress(Exception):
                    await self._send(lambda: self._framer.goaway(0, RST_PROTOCOL_ERROR))
            finally:
                tg.cancel_scope.cancel()

    async def _handle(self, frame: object, tg: anyio.abc.TaskGroup) -> None:
        if isinstance(frame, SynStream):
            await self._open(frame, tg)
        elif isinstance(frame, Data):
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                return
            if frame.data:
                try:
                    stream.send.send_nowait(frame.data)
                except anyio.WouldBlock:
                    await stream.send.send(frame.data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
            if frame.fin:
                stream.send.close()
        elif isinstance(frame, RstStream):
            stream = self._streams.pop(frame.stream_id, None)
            if stream is not None:
                stream.reset = True
                stream.send.close()
                pair = self._pairs.get(stream.request_id)
                if pair is not None and stream.kind == "data":
                    pair.scope.cancel()
        elif isinstance(frame, Ping):
            await self._send(functools.partial(self._framer.ping, frame.ping_id))

    async def _open(self, frame: SynStream, tg: anyio.abc.TaskGroup) -> None:
        headers = {k: v[0] if v else "" for k, v in frame.headers.items()}
        kind = headers.get("streamtype", "")
        if kind not in ("error", "data") or len(self._streams) >= MAX_STREAMS:
            await self._send(lambda: self._framer.rst_stream(frame.stream_id, RST_PROTOCOL_ERROR))
            return
        await self._send(lambda: self._framer.syn_reply(frame.stream_id, {}))
        request_id = headers.get("requestid", "")
        if not request_id:  # clients before requestID: the error stream's id pairs them
            request_id = str(frame.stream_id if kind == "error" else frame.stream_id - 2)
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        send, receive = anyio.create_memory_object_stream[bytes](16)
        stream = _Stream(frame.stream_id, kind, port, request_id, send, receive)
        if frame.fin:
            send.close()
        self._streams[frame.stream_id] = stream
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair()
            tg.start_soon(self._serve_pair, request_id, pair)
        if kind == "error":
            pair.error = stream
        else:
            pair.data = stream
        if pair.error is not None and pair.data is not None:
            pair.ready.set()

    async def _fin(self, stream: _Stream | None, payload: bytes = b"") -> None:
        if stream is None or stream.closed or stream.reset:
            return
        stream.closed = True
        await self._send(lambda: self._framer.data(stream.stream_id, payload, fin=True))

    async def _serve_pair(self, request_id: str, pair: _Pair) -> None:
        try:
            with anyio.move_on_after(self._pair_timeout):
                await pair.ready.wait()
            if pair.data is None or pair.error is None:
                await self._fin(pair.error, b"timed out waiting for the data stream")
                await self._fin(pair.data)
                return
            with pair.scope:
                await self._forward(pair.data, pair.error)
            await self._fin(pair.data)
            await self._fin(pair.error)
        finally:
            self._pairs.pop(request_id, None)
            for stream in (pair.data, pair.error):
                if stream is not None:
                    self._streams.pop(stream.stream_id, None)
                    stream.send.close()
                    stream.receive.close()

    async def _forward(self, data: _Stream, error: _Stream) -> None:
        port = data.port
        try:
            if not 1 <= port <= 65535:
                raise OSError(f"invalid port {port}")
            connection = await self._connect(port)
        except OSError as failure:
            message = f"error forwarding port {port} to pod {self._pod}, uid {self._uid}: {failure}"
            log.info("portforward_failed", pod=self._pod, port=port, error=str(failure))
            await self._fin(error, message.encode())
            return
        async with connection, anyio.create_task_group() as tg:

            async def upstream() -> None:
                try:
                    async for chunk in data.receive:
                        await connection.send(chunk)
                    await connection.send_eof()
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    tg.cancel_scope.cancel()

            async def downstream() -> None:
                try:
                    while True:
                        chunk = await connection.receive(_CHUNK)
                        if data.reset:
                            break
                        await self._send(
                            functools.partial(self._framer.data, data.stream_id, chunk)
                        )
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    await self._fin(data)
                except (OSError, anyio.BrokenResourceError):
                    tg.cancel_scope.cancel()

            tg.start_soon(upstream)
            tg.start_soon(downstream)
