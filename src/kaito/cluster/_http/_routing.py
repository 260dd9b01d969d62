"""URL paths of the Kubernetes API, parsed into routes."""

from __future__ import annotations

from functools import lru_cache

import attrs

__all__ = ("Route", "parse_path")


@attrs.frozen
class Route:
    """A parsed request path."""

    kind: str
    """``version``, ``api``, ``apis``, ``group``, ``group_version``, ``resource``, ``openapi_v2``,
    ``openapi_v3``, ``openapi_v3_gv``, ``health`` or ``unknown``."""
    group: str = ""
    version: str = ""
    namespace: str = ""
    plural: str = ""
    name: str = ""
    subresource: str = ""
    extra: str = ""


_HEALTH = frozenset({"healthz", "livez", "readyz"})


@lru_cache(maxsize=4096)
def parse_path(path: str) -> Route:
    """Parse ``/api/v1/namespaces/ns/pods/name/status`` and friends."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Route("root")
    head = parts[0]
    if head == "version" and len(parts) == 1:
        return Route("version")
    if head in _HEALTH:
        return Route("health", extra="/".join(parts[1:]))
    if head == "openapi":
        if parts[1:] == ["v2"]:
            return Route("openapi_v2")
        if parts[1:] == ["v3"]:
            return Route("openapi_v3")
        if len(parts) > 2 and parts[1] == "v3":
            return Route("openapi_v3_gv", extra="/".join(parts[2:]))
        return Route("unknown")
    if head == "api":
        if len(parts) == 1:
            return Route("api")
        return _resource_route("", parts[1], parts[2:])
    if head == "apis":
        if len(parts) == 1:
            return Route("apis")
        if len(parts) == 2:
            return Route("group", group=parts[1])
        return _resource_route(parts[1], parts[2], parts[3:])
    return Route("unknown")


def _resource_route(group: str, version: str, rest: list[str]) -> Route:
    if not rest:
        return Route("group_version", group=group, version=version)
    namespace = ""
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return Route("unknown")
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    return Route(
        "resource",
        group=group,
        version=version,
        namespace=namespace,
        plural=plural,
        name=name,
        subresource=subresource,
    )
