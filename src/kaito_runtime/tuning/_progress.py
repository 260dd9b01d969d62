"""Tuning progress: a JSON file, structlog events, and an HTTP endpoint the controller reads.

Runtime layer (tuning Job). After every logging step the tracker logs a ``tuning_progress``
event, updates the gauges served on ``GET /metrics`` (Prometheus) next to ``GET /progress``
(JSON), and has ``<output>/progress.json`` rewritten atomically. With several tuning processes
only rank 0 publishes; its tokens per second count every process's tokens (``processes`` says
how many took part). The file is written by a
background thread at most once per ``min_interval`` (a write and rename can take milliseconds,
which the training loop should not wait for); snapshots in between are coalesced to the newest,
and the final phases (``completed``, ``failed``) are on disk before
:meth:`ProgressTracker.update` returns.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import attrs
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from kaito_runtime.contract import (
    HEALTH_PATH,
    PROGRESS_FILE,
    PROGRESS_PATH,
    PROGRESS_PHASES,
    TuningProgress,
)

__all__ = ("PROGRESS_FILE", "Phase", "Progress", "ProgressServer", "ProgressTracker")

log = structlog.get_logger(__name__)

Phase = Literal["loading", "training", "saving", "completed", "failed"]
FINAL_PHASES = frozenset({"completed", "failed"})
#: One progress snapshot: the contract's document (exactly its keys go out).
Progress = TuningProgress


def _utc_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ProgressTracker:
    """Publish progress to a file, the log and Prometheus gauges; safe across threads.

    Call :meth:`close` when done (it flushes the file and stops the writer thread). Without an
    ``output_dir`` no file is written; ``log_events=False`` also keeps the snapshots out of the
    log (the tuning processes other than rank 0).
    """

    def __init__(
        self,
        output_dir: Path | None,
        *,
        wall_clock: Callable[[], float] = time.time,
        min_interval: float = 1.0,
        processes: int = 1,
        log_events: bool = True,
    ) -> None:
        self._path = output_dir / PROGRESS_FILE if output_dir is not None else None
        self._clock = wall_clock
        self._min_interval = min_interval
        self._log_events = log_events
        self._flush_requested = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._written = 0
        self._closed = False
        self._writer: threading.Thread | None = None
        if self._path is not None:
            self._writer = threading.Thread(
                target=self._write_loop, name="progress-writer", daemon=True
            )
            self._writer.start()
        self.registry = CollectorRegistry()
        self._gauges = {
            name: Gauge(f"kaito_tuning_{name}", help_text, registry=self.registry)
            for name, help_text in (
                ("step", "Optimizer steps completed."),
                ("max_steps", "Optimizer steps planned."),
                ("epoch", "Epochs completed (fractional)."),
                ("loss", "Training loss at the last logging step."),
                ("tokens_per_second", "Training tokens per second since the last logging step."),
                ("eta_seconds", "Estimated seconds until training completes."),
            )
        }
        self._phase = Gauge(
            "kaito_tuning_phase",
            "1 for the current phase of the tuning run.",
            ["phase"],
            registry=self.registry,
        )
        self._current = Progress(updated_at=_utc_iso(wall_clock()), processes=processes)

    @property
    def current(self) -> Progress:
        """The latest snapshot."""
        with self._lock:
            return self._current

    def update(self, **changes: Any) -> Progress:
        """Apply ``changes`` to the snapshot, then publish it everywhere; return it."""
        with self._lock:
            snapshot = attrs.evolve(self._current, updated_at=_utc_iso(self._clock()), **changes)
            self._current = snapshot
            for name, gauge in self._gauges.items():
                value = getattr(snapshot, name)
                if value is not None:
                    gauge.set(value)
            for phase in PROGRESS_PHASES:
                self._phase.labels(phase=phase).set(1 if phase == snapshot.phase else 0)
            self._version += 1
            self._changed.notify_all()
        if self._log_events:
            fields = {k: v for k, v in snapshot.to_json().items() if v is not None}
            log.info("tuning_progress", **fields)
        if snapshot.phase in FINAL_PHASES:
            self.flush()
        return snapshot

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the file holds the newest snapshot (or ``timeout`` seconds pass)."""
        if self._writer is None:
            return
        deadline = time.monotonic() + timeout
        with self._changed:
            self._flush_requested = True
            self._changed.notify_all()
            while self._written < self._version and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def close(self) -> None:
        """Flush the file and stop the writer thread; later updates only log."""
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=5)

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while self._written == self._version and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                snapshot, version = self._current, self._version
            self._write(snapshot)
            with self._changed:
                self._written = version
                self._changed.notify_all()
                # Rate limit: rest unless a flush (a final phase, close) wants the file now.
                self._changed.wait_for(
                    lambda: self._closed or self._flush_requested, timeout=self._min_interval
                )
                self._flush_requested = False

    def _write(self, snapshot: Progress) -> None:
        assert self._path is not None
        tmp = self._path.with_name(f".{self._path.name}.tmp")
        try:
            tmp.write_text(json.dumps(snapshot.to_json()) + "\n")
            os.replace(tmp, self._path)
        except OSError as exc:
            log.warning("progress_file_unwritable", path=str(self._path), error=str(exc))


class ProgressServer:
    """Serve ``GET /progress`` (JSON), ``GET /metrics`` (Prometheus) and ``GET /health``.

    Runs in a daemon thread; :meth:`close` stops it. Port 0 means "any free port" (see
    :attr:`port`); the command line maps ``--metrics-port 0`` to "no server" instead.
    """

    def __init__(self, tracker: ProgressTracker, *, host: str = "0.0.0.0", port: int) -> None:
        self._tracker = tracker
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="progress-server",
            daemon=True,
        )
        self._thread.start()
        log.info("progress_server_started", port=self.port)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        tracker = self._tracker

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == PROGRESS_PATH:
                    body = json.dumps(tracker.current.to_json()).encode()
                    content_type = "application/json"
                elif path == "/metrics":
                    body = generate_latest(tracker.registry)
                    content_type = CONTENT_TYPE_LATEST
                elif path == HEALTH_PATH:
                    body, content_type = b"ok\n", "text/plain"
                else:
                    self.send_error(404, "use /progress, /metrics or /health")
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
