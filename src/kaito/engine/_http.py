"""Engine layer: the probe server (``/healthz``, ``/readyz``) and the ``/metrics`` server."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ("build_metrics_app", "build_probe_app", "serve")


def build_probe_app(
    ready: Callable[[], bool],
    healthy: Callable[[], bool],
    not_ready_reason: Callable[[], str] | None = None,
) -> web.Application:
    """Return an app answering ``/healthz`` and ``/readyz`` (200 ``ok`` or 500 with a reason).

    ``not_ready_reason`` says why ``/readyz`` fails (default: the caches have not synced).
    """

    async def healthz(_: web.Request) -> web.Response:
        if healthy():
            return web.Response(text="ok")
        return web.Response(status=500, text="unhealthy: the manager is not running")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok")
        reason = not_ready_reason() if not_ready_reason else "informer caches have not synced"
        return web.Response(status=500, text=f"not ready: {reason}")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def build_metrics_app(registry: CollectorRegistry) -> web.Application:
    """Return an app serving ``registry`` in the Prometheus text format at ``/metrics``."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0 picks a free port); return the runner and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
