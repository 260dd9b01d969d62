"""A small HTTP file server on loopback with Range support and injectable faults.

Test support for the input fetch: it serves bytes registered per path, honours ``Range`` and
``If-Range`` like a real static server, and can be told to fail the next requests for a path
(an HTTP status, a connection cut after N bytes, a redirect) so retries and resume are tested
against real sockets.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs

__all__ = ("Cut", "FileServer", "Redirect", "Status", "serve_files")


@attrs.frozen
class Status:
    """Answer the next request with this status (and optional headers), no body."""

    code: int
    headers: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Cut:
    """Announce the full length, send ``after`` bytes, then close the connection."""

    after: int


@attrs.frozen
class Redirect:
    """Redirect the next request to ``location`` with ``code``."""

    location: str
    code: int = 302


Fault = Status | Cut | Redirect


@attrs.define
class FileServer:
    """The running server: register files and faults, read back the requests it saw."""

    host: str
    port: int
    files: dict[str, bytes] = attrs.field(factory=dict)
    faults: dict[str, deque[Fault]] = attrs.field(factory=lambda: defaultdict(deque))
    requests: list[tuple[str, dict[str, str]]] = attrs.field(factory=list)
    honour_range: bool = True

    def url(self, path: str) -> str:
        """Return the URL of ``path`` (which starts with ``/``)."""
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; return its URL."""
        self.files[path] = data
        return self.url(path)

    def fail_next(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests to ``path`` (one per request)."""
        self.faults[path].extend(faults)


def _handler(server_state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client hung up (a size cap, a cancel)

        def _answer(self) -> None:
            path = self.path.split("?", 1)[0]
            server_state.requests.append((self.path, dict(self.headers.items())))
            queue = server_state.faults.get(path)
            fault = queue.popleft() if queue else None
            if isinstance(fault, Status):
                self.send_response(fault.code)
                for key, value in fault.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if isinstance(fault, Redirect):
                self.send_response(fault.code)
                self.send_header("Location", fault.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = server_state.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            start = 0
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if (
                server_state.honour_range
                and range_header
                and range_header.startswith("bytes=")
                and (if_range is None or if_range == etag)
            ):
                start = int(range_header[len("bytes=") :].split("-", 1)[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if isinstance(fault, Cut):
                self.wfile.write(body[: fault.after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve_files(*, honour_range: bool = True) -> Iterator[FileServer]:
    """Run a :class:`FileServer` on ``127.0.0.1`` in a background thread; stop it on exit."""
    state = FileServer(host="127.0.0.1", port=0, honour_range=honour_range)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = int(httpd.server_address[1])
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fileserver", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
