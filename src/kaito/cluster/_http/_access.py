"""Access control at the HTTP edge: the user of a request (client certificate, bearer token,
impersonation headers) and its authorisation attributes, derived from the path, method and query
as kube-apiserver's ``RequestInfoFactory`` derives them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kaito.cluster._auth import AccessControl, Attributes, UserInfo, user_from_peercert
from kaito.cluster._http._routing import Route
from kaito.cluster._http._streaming import streaming_verb

__all__ = ("USER_KEY", "authenticate", "is_public", "request_attributes")

USER_KEY = web.RequestKey("kaito.user", UserInfo)
_PUBLIC = frozenset({"version", "health"})
_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}  # fmt: skip


def _peer_user(request: web.BaseRequest) -> UserInfo | None:
    transport = request.transport
    if transport is None:
        return None
    ssl_object: Any = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return user_from_peercert(ssl_object.getpeercert())


async def authenticate(access: AccessControl, request: web.BaseRequest) -> UserInfo | None:
    """The (possibly impersonated) user of ``request``; ``None`` when access control has
    nothing to do (no credentials, no impersonation, everyone allowed).

    Raises:
        StatusError: 401 for bad credentials, 403 for impersonation not allowed.
    """
    headers = request.headers
    authorization = headers.get("Authorization", "")
    certificate = _peer_user(request)
    impersonating = "Impersonate-User" in headers or "Impersonate-Group" in headers
    if access.trivial and not authorization and certificate is None and not impersonating:
        return None
    user = await access.authenticate(authorization, certificate)
    if impersonating:
        user = await access.impersonate(user, headers)
    request[USER_KEY] = user
    return user


def _flag(request: web.BaseRequest, key: str) -> bool:
    value = request.query.get(key)
    return value is not None and value.lower() in ("true", "1")


def request_attributes(user: UserInfo, request: web.BaseRequest, route: Route) -> Attributes:
    """What the request asks to do."""
    if route.kind != "resource":
        return Attributes(user, request.method.lower(), resource_request=False, path=request.path)
    # pods/log is get; pods/exec, attach and portforward are create, WebSocket upgrades included.
    streaming = streaming_verb(route)
    verb = streaming or _VERBS.get(request.method, request.method.lower())
    name = route.name
    if streaming is None and verb == "get":
        if _flag(request, "watch"):
            verb = "watch"
        elif not name:
            verb = "list"
    elif streaming is None and verb == "delete" and not name:
        verb = "deletecollection"
    namespace = route.namespace
    if route.group == "" and route.plural == "namespaces" and name and not namespace:
        namespace = name
    return Attributes(
        user,
        verb,
        api_group=route.group,
        api_version=route.version,
        resource=route.plural,
        subresource=route.subresource,
        namespace=namespace,
        name=name,
    )


def is_public(route: Route) -> bool:
    """Paths anonymous users may read (``system:public-info-viewer``)."""
    return route.kind in _PUBLIC
