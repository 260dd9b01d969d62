"""The pre-bound listening socket: accepted connections must not delay small writes."""

from __future__ import annotations

import socket

from kaito_runtime.inference import bind_socket


def test_accepted_connections_have_nagle_disabled() -> None:
    listener = bind_socket("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only then
        with socket.create_connection(listener.getsockname()[:2]):
            conn, _ = listener.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()
