"""Serve a ``FakeKube`` over HTTP in the Kubernetes REST shape, for the real ``KubeClient``.

Collections, objects, the status subresource, merge patches, watches (chunked JSON lines,
bookmarks, ERROR events for 410) and ``Status`` bodies for errors, with ``Retry-After`` for
429s: enough for kubernetes_asyncio to talk to it as to a real API server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from aiohttp import web

from kaito.engine.errors import ApiError
from kaito.engine.keys import ObjectKey
from kaito.engine.resources import Resource
from tests.engine.fakekube import FakeKube

JSON = dict[str, Any]


def _status(err: ApiError) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": err.status,
        "reason": err.reason,
        "message": err.message,
    }
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(int(err.retry_after))
    return web.json_response(body, status=err.status or 500, headers=headers)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


class FakeServer:
    """An aiohttp app over a :class:`FakeKube`."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.requests: list[tuple[str, str]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{path:.*}", self.handle)

    def _route(self, path: str) -> tuple[Resource, str | None, str | None, str | None]:
        segs = [s for s in path.split("/") if s]
        if segs[:1] == ["api"]:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"]:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "NotFound", f"no route for {path}")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = self.kube.resources.get((group, version, rest[0]))
        if resource is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource {path}"
            )
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return resource, namespace, name, sub

    def _discovery(self, path: str) -> JSON | None:
        resources = list(self.kube.resources.values())
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for r in resources:
                if r.group:
                    groups.setdefault(r.group, []).append(r.version)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                        "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                    }
                    for g, vs in groups.items()
                ],
            }
        segs = [s for s in path.split("/") if s]
        if segs[:1] == ["api"] and len(segs) == 2:
            group, version = "", segs[1]
        elif segs[:1] == ["apis"] and len(segs) == 3:
            group, version = segs[1], segs[2]
        else:
            return None
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        listed: list[JSON] = []
        for r in resources:
            if (r.group, r.version) != (group, version):
                continue
            entry = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced}
            listed.append({**entry, "kind": r.kind, "verbs": verbs})
            listed.append(
                {
                    **entry,
                    "name": f"{r.plural}/status",
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": listed,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.method == "GET":
            discovered = self._discovery(request.path.rstrip("/"))
            if discovered is not None:
                return web.json_response(discovered)
        try:
            resource, namespace, name, sub = self._route(request.path)
            q = request.query
            kube = self.kube
            if request.method == "GET" and name is None:
                if _truthy(q.get("watch")):
                    return await self._watch(request, resource, namespace)
                page = await kube.list(
                    resource,
                    namespace=namespace,
                    label_selector=q.get("labelSelector"),
                    limit=int(q["limit"]) if q.get("limit") else None,
                    continue_token=q.get("continue"),
                )
                meta: JSON = {"resourceVersion": page.resource_version}
                if page.continue_token:
                    meta["continue"] = page.continue_token
                return web.json_response(
                    {
                        "apiVersion": resource.api_version,
                        "kind": f"{resource.kind}List",
                        "metadata": meta,
                        "items": page.items,
                    }
                )
            if request.method == "GET":
                return web.json_response(
                    await kube.get(resource, ObjectKey(namespace or "", name or ""))
                )
            if request.method == "POST":
                created = await kube.create(resource, await request.json(), namespace=namespace)
                return web.json_response(created, status=201)
            key = ObjectKey(namespace or "", name or "")
            if request.method == "PATCH":
                if "merge-patch" not in (request.content_type or ""):
                    raise ApiError(
                        415, "UnsupportedMediaType", f"{request.content_type} is not supported here"
                    )
                return web.json_response(
                    await kube.patch(resource, key, await request.json(), subresource=sub)
                )
            if request.method == "PUT":
                return web.json_response(
                    await kube.replace(resource, await request.json(), subresource=sub)
                )
            if request.method == "DELETE":
                if key not in kube.objects[resource]:
                    raise ApiError(404, "NotFound", f'{resource.plural} "{key.name}" not found')
                await kube.delete(resource, key)
                return web.json_response({"kind": "Status", "status": "Success"})
            raise ApiError(405, "MethodNotAllowed", request.method)
        except ApiError as err:
            return _status(err)

    async def _watch(
        self, request: web.Request, resource: Resource, namespace: str | None
    ) -> web.StreamResponse:
        q = request.query
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        async with self.kube.watch(
            resource,
            namespace=namespace,
            label_selector=q.get("labelSelector"),
            resource_version=q.get("resourceVersion"),
        ) as events:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            with anyio.move_on_after(timeout if timeout is not None else float("inf")):
                try:
                    async for event in events:
                        line = {"type": event.type, "object": event.object}
                        await resp.write(json.dumps(line).encode() + b"\n")
                except ApiError as err:
                    status = {
                        "kind": "Status",
                        "code": err.status,
                        "reason": err.reason,
                        "message": err.message,
                    }
                    await resp.write(
                        json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                    )
        await resp.write_eof()
        return resp


@asynccontextmanager
async def serve(kube: FakeKube) -> AsyncIterator[tuple[FakeServer, str]]:
    """Serve ``kube`` on a free loopback port; yield the server and its base URL."""
    server = FakeServer(kube)
    runner = web.AppRunner(server.app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
