"""The HTTP layer of the in-process cluster (aiohttp)."""

from kaito.cluster._http._app import ApiHandler, ServerInfo
from kaito.cluster._http._streaming import (
    STREAMING_SUBRESOURCES,
    PodStreams,
    StreamingRoutes,
    streaming_verb,
)

__all__ = (
    "STREAMING_SUBRESOURCES",
    "ApiHandler",
    "PodStreams",
    "ServerInfo",
    "StreamingRoutes",
    "streaming_verb",
)
