"""Prometheus metrics of one server, in a registry of its own (no global state), and the
middleware that counts every response.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kaito_runtime.inference._asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ("CLIENT_CLOSED_REQUEST", "MetricsMiddleware", "ServerMetrics")

# nginx's status for a request whose client went away before the answer (none was sent).
CLIENT_CLOSED_REQUEST = 499

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServerMetrics:
    """Requests by route and status, latency, tokens in and out, time to first token."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kaito_inference_requests",
            "HTTP requests answered, by route and status code.",
            ("route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "kaito_inference_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "kaito_inference_prompt_tokens",
            "Prompt tokens of served generation requests.",
            registry=self.registry,
        )
        self.generation_tokens = Counter(
            "kaito_inference_generation_tokens",
            "Tokens generated.",
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "kaito_inference_time_to_first_token_seconds",
            "Time from admission to the first generated token.",
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "kaito_inference_requests_in_flight",
            "Generation requests admitted and not yet finished.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "kaito_inference_requests_rejected",
            "Requests refused before generation, by reason "
            "(overloaded, body_too_large, body_timeout).",
            ("reason",),
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "kaito_inference_model_loaded",
            "1 once the model is loaded and serving, else 0.",
            registry=self.registry,
        )


class MetricsMiddleware:
    """Count every response by route and status, and time it until its last byte.

    A request that ends without a response is counted as 499 (its client went away), or 500 when
    the application raised.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: frozenset[str],
        metrics: ServerMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"
        started = self.clock()
        status: int | None = None
        failed = False

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            failed = True
            raise
        finally:
            if status is None:
                status = 500 if failed else CLIENT_CLOSED_REQUEST
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(self.clock() - started)
