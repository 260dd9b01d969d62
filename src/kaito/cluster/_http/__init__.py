"""The HTTP layer of the in-process cluster (aiohttp)."""

from kaito.cluster._http._app import ApiHandler, ServerInfo

__all__ = ("ApiHandler", "ServerInfo")
