"""Running the server: bind the socket first, then serve while the model loads.

As vLLM's API server does, the listening socket is bound before anything slow happens, so
Kubernetes probes get 503 ("loading") instead of "connection refused" during the model load.
"""

from __future__ import annotations

import socket

import structlog
import uvicorn

from kaito_runtime.adapters import write_termination_message
from kaito_runtime.inference._app import EngineOpener, build_app
from kaito_runtime.inference._settings import InferenceSettings

__all__ = ("bind_socket", "serve")

log = structlog.get_logger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (IPv6 when the host is an IPv6 address).

    The socket is made with ``IPPROTO_TCP`` and ``TCP_NODELAY``: asyncio disables Nagle's
    algorithm on accepted connections only when the listening socket says it is TCP, and without
    that every response after the first on a keep-alive connection waits for the client's
    delayed ACK (40 ms on Linux).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(
    settings: InferenceSettings,
    *,
    sock: socket.socket | None = None,
    engine_opener: EngineOpener | None = None,
) -> int:
    """Serve until a signal (exit status 0) or a failed model load (exit status 1)."""
    listener = sock or bind_socket(settings.host, settings.port)
    failed: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_load_failure(err: BaseException) -> None:
        failed.append(err)
        reason = " ".join(str(err).split()) or type(err).__name__
        write_termination_message(f"inference server stopped: the model failed to load: {reason}")
        if server is not None:
            server.should_exit = True

    app = build_app(settings, engine_opener=engine_opener, on_load_failure=on_load_failure)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    host, port = listener.getsockname()[:2]
    log.info("server_listening", host=host, port=port, model=settings.model)
    try:
        await server.serve(sockets=[listener])
    finally:
        listener.close()
    return 1 if failed else 0
