"""The streaming subresources of Pods, as kube-apiserver serves them from the kubelet:
``pods/log`` (a plain-text, optionally endless response), ``pods/exec`` and ``pods/attach`` (a
WebSocket with the remote-command channel protocol, ``v5.channel.k8s.io`` or ``v4``) and
``pods/portforward`` (SPDY tunnelled through a WebSocket, ``SPDY/3.1+portforward.k8s.io``, what
kubectl 1.31+ sends first).

What the API server checks itself (the Pod exists and is bound, the container is one of its
containers, the options are valid) is answered before the upgrade, as an HTTP error with a
``Status``; what the node finds (the container is not running, the command cannot start) comes
on the error channel, as from the kubelet. SPDY upgrades (kubectl's fallback when a WebSocket
upgrade fails) are refused with 400 after those checks, so kubectl shows the real error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.abc
import attrs
import structlog
from aiohttp import WSMsgType, web

from kaito.apimachinery import FieldError
from kaito.cluster._errors import StatusError, bad_request, invalid
from kaito.cluster._http._channels import (
    CLOSE,
    ERROR,
    REMOTE_COMMAND_PROTOCOLS,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ChannelSocket,
    exit_status,
    requested_protocols,
    success_status,
    terminal_sizes,
)
from kaito.cluster._http._portforward import PortForwardSession
from kaito.cluster._http._routing import Route
from kaito.cluster._json import Obj, loads
from kaito.cluster._kubelet import Attachment, ExecSession, LogOptions
from kaito.cluster._rest import RestApi

__all__ = ("STREAMING_SUBRESOURCES", "PodStreams", "StreamingRoutes", "streaming_verb")

log = structlog.get_logger(__name__)

STREAMING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward"})
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
#: The longest an exec, attach or port-forward stream may stay open (kube-apiserver's idle
#: timeout of these streams).
STREAM_TIME_LIMIT = 4 * 3600.0
_MAX_MESSAGE = 4 * 1024 * 1024
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_NOT_ALLOWED = "the server does not allow this method on the requested resource"


@attrs.frozen
class _Command:
    """What ``pods/exec`` or ``pods/attach`` asked for."""

    namespace: str
    pod: str
    container: str | None
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


_HEARTBEAT = 30.0


def streaming_verb(route: Route) -> str | None:
    """The authorization verb of a streaming request (``None`` for other requests): ``get`` for
    ``pods/log``; ``create`` for ``pods/exec``, ``attach`` and ``portforward`` whatever the
    method, as kube-apiserver authorizes WebSocket upgrades (a GET) since 1.32."""
    if route.kind != "resource" or route.group != "" or route.plural != "pods":
        return None
    if route.subresource == "log":
        return "get"
    if route.subresource in ("exec", "attach", "portforward"):
        return "create"
    return None


@runtime_checkable
class PodStreams(Protocol):
    """Protocol: the node side of the streaming subresources (``LocalKubelet`` is one)."""

    def read_logs(
        self, namespace: str, pod: str, options: LogOptions | None = None
    ) -> AsyncIterator[bytes]:
        """The container's log (raises ``StatusError`` before the first byte)."""
        ...

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        command: list[str] | tuple[str, ...],
        *,
        stdin: bool = False,
        tty: bool = False,
    ) -> AbstractAsyncContextManager[ExecSession]:
        """Run a command in a running container."""
        ...

    def attach(
        self, namespace: str, pod: str, container: str | None
    ) -> AbstractAsyncContextManager[Attachment]:
        """Attach to a running container."""
        ...

    def pod_address(self, namespace: str, pod: str) -> str:
        """The IP of a Pod running on this node."""
        ...


def _flag(query: Any, key: str) -> bool:
    value = query.get(key)
    return value is not None and value.lower() in ("true", "1")


def _invalid_options(kind: str, name: str, field: str, value: object, detail: str) -> StatusError:
    return invalid("", kind, name, [FieldError("Invalid", field, value, detail)])


def _int_param(query: Any, key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{key}: Invalid value: {value!r}: must be an integer") from None


class StreamingRoutes:
    """Serves ``pods/{log,exec,attach,portforward}`` from ``streams`` (``None``: a cluster
    whose kubelet runs no processes, which answers with an error that says so)."""

    def __init__(
        self,
        rest: RestApi,
        streams: PodStreams | None,
        *,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._rest = rest
        self._streams = streams
        self._clock = clock

    async def handle(self, request: web.BaseRequest, route: Route) -> web.StreamResponse:
        """Serve one streaming request (``streaming_verb(route)`` is not ``None``)."""
        sub = route.subresource
        allowed = ("GET", "HEAD") if sub == "log" else ("GET", "POST")
        if request.method not in allowed:
            raise StatusError(405, "MethodNotAllowed", _NOT_ALLOWED)
        pod = await self._pod(route.namespace, route.name)
        streams = self._node(pod)
        if sub == "log":
            return await self._log(request, streams, pod)
        if sub == "portforward":
            return await self._port_forward(request, streams, pod)
        return await self._remote_command(request, streams, pod, attach=sub == "attach")

    # -- what the API server checks ---------------------------------------------------------

    async def _pod(self, namespace: str, name: str) -> Obj:
        rt = self._rest.catalog.lookup("", "v1", "pods")
        assert rt is not None
        pod: Obj = loads((await self._rest.get(rt, namespace, name)).data)
        return pod

    def _node(self, pod: Obj) -> PodStreams:
        name = pod["metadata"]["name"]
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            raise bad_request(f"pod {name} does not have a host assigned")
        if self._streams is None:
            raise bad_request(
                f'node "{node}" runs no containers (the simulated kubelet): pod {name} has no '
                'logs, exec, attach or port-forward; start the cluster with kubelet="local" to '
                "run Pods as processes"
            )
        return self._streams

    @staticmethod
    def _container(pod: Obj, requested: str | None) -> str | None:
        name = pod["metadata"]["name"]
        spec = pod.get("spec") or {}
        containers = [str(c.get("name", "")) for c in spec.get("containers") or []]
        init = [str(c.get("name", "")) for c in spec.get("initContainers") or []]
        ephemeral = [str(c.get("name", "")) for c in spec.get("ephemeralContainers") or []]
        if requested:
            if requested not in (*containers, *init, *ephemeral):
                raise bad_request(f"container {requested} is not valid for pod {name}")
            return requested
        if len(containers) == 1:
            return containers[0]
        message = f"a container name must be specified for pod {name}, choose one of: {containers}"
        if init:
            message += f" or one of the init containers: {init}"
        raise bad_request(message.replace("'", ""))

    # -- pods/log ---------------------------------------------------------------------------

    def _log_options(self, request: web.BaseRequest, pod: Obj, container: str | None) -> LogOptions:
        query = request.query
        name = pod["metadata"]["name"]
        tail = _int_param(query, "tailLines")
        if tail is not None and tail < 0:
            raise _invalid_options(
                "PodLogOptions", name, "tailLines", tail, "must be greater than or equal to 0"
            )
        limit = _int_param(query, "limitBytes")
        if limit is not None and limit < 1:
            raise _invalid_options(
                "PodLogOptions", name, "limitBytes", limit, "must be greater than 0"
            )
        since_seconds = _int_param(query, "sinceSeconds")
        since_time = query.get("sinceTime")
        if since_seconds is not None and since_time:
            raise invalid(
                "",
                "PodLogOptions",
                name,
                [
                    FieldError(
                        "Forbidden",
                        "",
                        detail="at most one of `sinceTime` or `sinceSeconds` may be specified",
                    )
                ],
            )
        since: dt.datetime | None = None
        if since_seconds is not None:
            if since_seconds < 1:
                raise _invalid_options(
                    "PodLogOptions", name, "sinceSeconds", since_seconds, "must be greater than 0"
                )
            since = self._clock() - dt.timedelta(seconds=since_seconds)
        elif since_time:
            try:
                since = dt.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
            except ValueError:
                raise bad_request(
                    f'sinceTime: Invalid value: "{since_time}": must be an RFC 3339 time'
                ) from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=dt.UTC)
        return LogOptions(
            container=container,
            follow=_flag(query, "follow"),
            previous=_flag(query, "previous"),
            tail_lines=tail,
            since=since,
            timestamps=_flag(query, "timestamps"),
            limit_bytes=limit,
        )

    async def _log(
        self, request: web.BaseRequest, streams: PodStreams, pod: Obj
    ) -> web.StreamResponse:
        container = self._container(pod, request.query.get("container"))
        options = self._log_options(request, pod, container)
        chunks = streams.read_logs(pod["metadata"]["namespace"], pod["metadata"]["name"], options)
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        if options.follow:
            response.enable_chunked_encoding()
        await response.prepare(request)
        closing = getattr(chunks, "aclose", None)
        try:
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing()
        return response

    # -- upgrades ---------------------------------------------------------------------------

    @staticmethod
    def _websocket_protocol(request: web.BaseRequest, supported: tuple[str, ...]) -> str:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request(
                "Upgrade request required: this server serves this subresource over WebSockets "
                f"({', '.join(supported)}); SPDY is not supported (kubectl 1.31 or newer uses "
                "WebSockets)"
            )
        offered = requested_protocols(request)
        for protocol in offered:
            if protocol in supported:
                return protocol
        raise bad_request(
            f"requested protocol(s) are not supported: {offered}; supports {list(supported)}"
        )

    @staticmethod
    async def _upgrade(request: web.BaseRequest, protocol: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            protocols=(protocol,),
            autoping=True,
            heartbeat=_HEARTBEAT,
            max_msg_size=_MAX_MESSAGE,
            compress=False,
        )
        await ws.prepare(request)
        return ws

    # -- pods/exec and pods/attach ----------------------------------------------------------

    async def _remote_command(
        self, request: web.BaseRequest, streams: PodStreams, pod: Obj, *, attach: bool
    ) -> web.StreamResponse:
        query = request.query
        tty = _flag(query, "tty")
        target = _Command(
            namespace=pod["metadata"]["namespace"],
            pod=pod["metadata"]["name"],
            container=self._container(pod, query.get("container")),
            command=tuple(query.getall("command", [])),
            stdin=_flag(query, "stdin"),
            stdout=_flag(query, "stdout"),
            stderr=_flag(query, "stderr") and not tty,
            tty=tty,
        )
        if not (target.stdin or target.stdout or target.stderr):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if not attach and not target.command:
            raise bad_request("you must specify at least one command for the container")
        protocol = self._websocket_protocol(request, REMOTE_COMMAND_PROTOCOLS)
        ws = await self._upgrade(request, protocol)
        channels = ChannelSocket(ws, protocol)
        verb = "attach" if attach else "exec"
        where = {"pod": f"{target.namespace}/{target.pod}", "container": target.container}
        log.info("pod_stream_opened", verb=verb, **where)
        status: Obj | None
        try:
            # The first (empty) message tells the client the streams are ready.
            first = STDOUT if target.stdout else STDERR if target.stderr else ERROR
            await channels.write(first, b"")
            with anyio.fail_after(STREAM_TIME_LIMIT):
                if attach:
                    status = await self._attach(streams, channels, target)
                else:
                    status = await self._exec(streams, channels, target)
        except StatusError as error:
            status = error.status()
        except TimeoutError:
            status = StatusError(
                408, "Timeout", f"{verb} stream open longer than {STREAM_TIME_LIMIT:.0f}s"
            ).status()
        except (ConnectionResetError, ConnectionError):
            status = None
        if status is not None and not ws.closed:
            with contextlib.suppress(ConnectionResetError, ConnectionError):
                await channels.write_status(status)
        with anyio.CancelScope(shield=True):
            await ws.close()
        log.info("pod_stream_closed", verb=verb, **where)
        return ws

    async def _exec(
        self, streams: PodStreams, channels: ChannelSocket, target: _Command
    ) -> Obj | None:
        async with streams.exec(
            target.namespace,
            target.pod,
            target.container,
            target.command,
            stdin=target.stdin,
            tty=target.tty,
        ) as session:
            gone = await self._relay(
                channels,
                session.output,
                send_stdin=session.send_stdin if target.stdin else None,
                close_stdin=session.close_stdin if target.stdin else None,
                resize=session.resize if target.tty else None,
                target=target,
            )
            if gone:
                return None
            code = await session.wait()
        return success_status() if code == 0 else exit_status(code)

    async def _attach(
        self, streams: PodStreams, channels: ChannelSocket, target: _Command
    ) -> Obj | None:
        async with streams.attach(target.namespace, target.pod, target.container) as attachment:
            takes_stdin = target.stdin and attachment.stdin

            async def close_stdin() -> None:
                await attachment.process.close_stdin()

            gone = await self._relay(
                channels,
                attachment.output,
                send_stdin=attachment.send_stdin if takes_stdin else None,
                close_stdin=close_stdin if takes_stdin and attachment.stdin_once else None,
                resize=attachment.resize if attachment.tty else None,
                target=target,
            )
        return None if gone else success_status()

    @staticmethod
    async def _relay(
        channels: ChannelSocket,
        output: Any,
        *,
        send_stdin: Callable[[bytes], Any] | None,
        close_stdin: Callable[[], Any] | None,
        resize: Callable[[int, int], None] | None,
        target: _Command,
    ) -> bool:
        """Copy output to the client and its input to the process until the output ends;
        ``True`` when the client went away first."""
        gone = False
        async with anyio.create_task_group() as tg:

            async def read_client() -> None:
                nonlocal gone
                async for message in channels.messages():
                    if message.channel == STDIN and send_stdin is not None and message.data:
                        with contextlib.suppress(*_GONE):
                            await send_stdin(message.data)
                    elif message.channel == RESIZE and resize is not None:
                        for width, height in terminal_sizes(message.data):
                            with contextlib.suppress(OSError):
                                resize(width, height)
                    elif (
                        message.channel == CLOSE
                        and message.data == bytes([STDIN])
                        and close_stdin is not None
                    ):
                        with contextlib.suppress(*_GONE):
                            await close_stdin()
                gone = True
                tg.cancel_scope.cancel()

            tg.start_soon(read_client)
            async for stream, data in output:
                channel = STDERR if stream == "stderr" else STDOUT
                if (channel == STDOUT and target.stdout) or (channel == STDERR and target.stderr):
                    await channels.write(channel, data)
            tg.cancel_scope.cancel()
        return gone

    # -- pods/portforward -------------------------------------------------------------------

    async def _port_forward(
        self, request: web.BaseRequest, streams: PodStreams, pod: Obj
    ) -> web.StreamResponse:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        protocol = self._websocket_protocol(request, (PORT_FORWARD_PROTOCOL,))
        address = streams.pod_address(namespace, name)
        ws = await self._upgrade(request, protocol)
        log.info("pod_port_forward_opened", pod=f"{namespace}/{name}", address=address)

        async def connect(port: int) -> anyio.abc.ByteStream:
            try:
                with anyio.fail_after(10):
                    return await anyio.connect_tcp(address, port)
            except (OSError, TimeoutError) as error:
                cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
                reason = os.strerror(cause.errno).lower() if cause.errno else "i/o timeout"
                raise OSError(f"dial tcp4 {address}:{port}: connect: {reason}") from error

        session = PortForwardSession(
            ws.send_bytes, connect, pod=name, uid=str(pod["metadata"].get("uid", ""))
        )

        async def incoming() -> AsyncIterator[bytes]:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    yield message.data
                elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return

        try:
            with anyio.fail_after(STREAM_TIME_LIMIT):
                await session.run(incoming())
        except (TimeoutError, ConnectionResetError, ConnectionError):
            pass
        with anyio.CancelScope(shield=True):
            await ws.close()
        log.info("pod_port_forward_closed", pod=f"{namespace}/{name}")
        return ws
