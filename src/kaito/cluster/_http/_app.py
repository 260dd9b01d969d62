"""The HTTP front end: aiohttp's low-level server, one handler that routes Kubernetes API paths to
the REST layer, negotiates JSON/YAML/Table responses, streams watches and turns every failure into
a ``Status``."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import structlog
from aiohttp import web

from kaito.cluster._audit import AuditEvent, AuditLog
from kaito.cluster._auth import LOOPBACK_ADMIN, REVIEW_RESOURCES, AccessControl
from kaito.cluster._errors import (
    StatusError,
    bad_request,
    internal_error,
    method_not_supported,
    not_acceptable,
)
from kaito.cluster._faults import ConnectionDrop, Faults, RequestInfo
from kaito.cluster._http import _negotiation
from kaito.cluster._http._access import USER_KEY, authenticate, is_public, request_attributes
from kaito.cluster._http._discovery import Discovery
from kaito.cluster._http._memory import LARGE_BODY, release_free_memory
from kaito.cluster._http._negotiation import MAX_BODY, Accept, decode_body, parse_accept
from kaito.cluster._http._openapi import OpenApi
from kaito.cluster._http._protobuf import (
    PROTOBUF,
    PROTOBUF_WATCH,
    decode_protobuf_body,
    encode_protobuf,
    is_protobuf,
    watch_frame,
)
from kaito.cluster._http._routing import Route, parse_path
from kaito.cluster._http._streaming import PodStreams, StreamingRoutes, streaming_verb
from kaito.cluster._http._table import metadata_only, table
from kaito.cluster._json import Obj, dumps, loads
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import (
    INITIAL_EVENTS_END,
    DeleteOptions,
    ListOptions,
    RequestContext,
    RestApi,
    WatchItem,
    WatchOptions,
    WriteOptions,
)
from kaito.cluster._selectors import parse_field_selector, parse_label_selector
from kaito.cluster._store import GroupResource
from kaito.cluster._yaml import dump_yaml

__all__ = ("ApiHandler", "ServerInfo")

log = structlog.get_logger(__name__)

_JSON = "application/json"
_NOT_FOUND = StatusError(404, "NotFound", "the server could not find the requested resource", {})
_TIMED_OUT = object()
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_CREATED_NAME = web.RequestKey("kaito.created_name", str)


class ServerInfo:
    """What ``/version`` reports."""

    def __init__(
        self, major: str = "1", minor: str = "32", git_version: str = "v1.32.0-kaito"
    ) -> None:
        self.document = dumps(
            {
                "major": major,
                "minor": minor,
                "gitVersion": git_version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )
        self.git_version = git_version


def _flag(query: Any, key: str) -> bool:
    value = query.get(key)
    return value is not None and value.lower() in ("true", "1")


def _int(query: Any, key: str) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{key}: Invalid value: {value!r}: must be an integer") from None


def _write_options(query: Any) -> WriteOptions:
    dry_run = query.getall("dryRun", [])
    for value in dry_run:
        if value != "All":
            raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    validation = query.get("fieldValidation") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{validation}": supported values: "Ignore", '
            '"Strict", "Warn"'
        )
    manager = query.get("fieldManager") or ""
    if len(manager) > 128:
        raise bad_request("fieldManager: Too long: may not be more than 128 bytes")
    return WriteOptions(
        dry_run=bool(dry_run),
        field_manager=manager,
        field_validation=validation,
        force=_flag(query, "force"),
    )


class _HttpWatch:
    """An open watch response, registered with the fault injector."""

    def __init__(self, resource: GroupResource, stream: Any, request: web.BaseRequest) -> None:
        self.resource = resource
        self._stream = stream
        self._request = request
        self.aborted = False

    def end(self, *, abort: bool) -> None:
        self.aborted = abort
        if abort and self._request.transport is not None:
            self._request.transport.close()
        self._stream.close()


def _take(chunks: list[bytes], chunk: bytes, size: int) -> int:
    size += len(chunk)
    if size > MAX_BODY:
        raise StatusError(
            413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}"
        )
    chunks.append(chunk)
    return size


async def _receive(request: web.BaseRequest) -> bytes:
    """The request's body, at most ``MAX_BODY`` bytes (413), within ``BODY_READ_TIMEOUT`` (504).

    A client that trickles its body holds a request open; it gets what kube-apiserver's request
    timeout gives once the body has taken longer than the deadline. What has already arrived (a
    small body comes with its headers) is taken without waiting, and without a deadline to set.
    """
    content = request.content
    chunks: list[bytes] = []
    size = 0
    while chunk := content.read_nowait(65536):
        size = _take(chunks, chunk, size)
    if not content.at_eof():
        with anyio.move_on_after(_negotiation.BODY_READ_TIMEOUT) as scope:
            while chunk := await content.read(65536):
                size = _take(chunks, chunk, size)
        if scope.cancelled_caught:
            raise StatusError(
                504,
                "Timeout",
                "Timeout: request did not complete within requested timeout - context deadline "
                "exceeded",
                {},
            )
    return b"".join(chunks)


class ApiHandler:
    """Serves the Kubernetes API from a :class:`RestApi`."""

    def __init__(
        self,
        rest: RestApi,
        *,
        faults: Faults,
        server_address: Callable[[], str],
        info: ServerInfo,
        access: AccessControl,
        bookmark_interval: float = 10.0,
        clock: Callable[[], dt.datetime],
        streams: PodStreams | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._rest = rest
        self._streaming = StreamingRoutes(rest, streams, clock=clock)
        self._audit = audit or AuditLog()
        self._catalog = rest.catalog
        self._faults = faults
        self._info = info
        self._access = access
        self._bookmark_interval = bookmark_interval
        self._clock = clock
        self._address = server_address
        self._discovery: Discovery | None = None
        self._openapi = OpenApi(self._catalog, info.git_version)

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            self._discovery = Discovery(self._catalog, self._address())
        return self._discovery

    # ------------------------------------------------------------------ entry point

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        route = parse_path(request.path)
        ctx = RequestContext()
        audited = self._audit.active
        received = self._clock() if audited else None
        watch = False
        response: web.StreamResponse | None = None
        try:
            user = await authenticate(self._access, request)
            if user is not None:
                ctx = RequestContext(user=user.name, groups=user.groups, uid=user.uid)
                await self._access.authorize(
                    request_attributes(user, request, route), public=is_public(route)
                )
            if self._faults.active:
                error = await self._faults.before_request(self._request_info(request, route))
                if isinstance(error, ConnectionDrop):
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response(status=500)  # never sent: the connection is gone
                if error is not None:
                    raise error
            if audited and route.kind == "resource" and request.method == "GET":
                watch = _flag(request.query, "watch")
                if watch:
                    self._audit_event(request, route, "ResponseStarted", 200, received)
            response = await self._dispatch(request, route, ctx)
            return response
        except StatusError as error:
            response = self._error(request, error, ctx)
            return response
        except Exception as error:
            log.exception("request_failed", method=request.method, path=request.path)
            response = self._error(request, internal_error(f"{type(error).__name__}: {error}"), ctx)
            return response
        finally:
            if audited and response is not None and not (watch and response.status < 300):
                self._audit_event(request, route, "ResponseComplete", response.status, received)
            if ctx.large_body:
                release_free_memory()

    def _audit_event(
        self,
        request: web.BaseRequest,
        route: Route,
        stage: str,
        code: int,
        received: dt.datetime | None,
    ) -> None:
        user = request.get(USER_KEY) or LOOPBACK_ADMIN
        info = self._request_info(request, route)
        verb = info.verb if info.verb != "discovery" else request.method.lower()
        self._audit.emit(
            AuditEvent(
                stage=stage,
                verb=verb,
                user=user.name,
                groups=user.groups,
                extra=user.extra,
                user_agent=request.headers.get("User-Agent", ""),
                request_uri=str(request.rel_url),
                code=code,
                api_group=route.group,
                api_version=route.version,
                resource=route.plural,
                subresource=route.subresource,
                namespace=route.namespace,
                name=route.name or request.get(_CREATED_NAME, ""),
                received=received,
            )
        )

    def _request_info(self, request: web.BaseRequest, route: Route) -> RequestInfo:
        streaming = streaming_verb(route)
        if streaming is not None:
            verb = streaming
        elif route.kind != "resource":
            verb = "discovery"
        elif request.method == "GET":
            verb = "watch" if _flag(request.query, "watch") else ("get" if route.name else "list")
        elif request.method == "DELETE" and not route.name:
            verb = "deletecollection"
        else:
            verb = _WRITE_VERBS.get(request.method, request.method.lower())
        return RequestInfo(
            request.method,
            request.path,
            verb,
            route.group,
            route.plural,
            route.namespace,
            route.name,
            route.subresource,
        )

    # ------------------------------------------------------------------ responses

    def _respond(
        self,
        request: web.BaseRequest,
        body: bytes,
        status: int = 200,
        *,
        ctx: RequestContext | None = None,
        content_type: str = _JSON,
        accept: Accept | None = None,
    ) -> web.Response:
        if accept is not None and accept.protobuf and content_type == _JSON:
            encoded = encode_protobuf(body)
            if encoded is not None:
                body, content_type = encoded, PROTOBUF
            elif accept.protobuf_only:
                raise not_acceptable(["application/json", "application/yaml"])
        if accept is not None and accept.yaml and content_type == _JSON:
            body, content_type = dump_yaml(loads(body)), "application/yaml"
        response = web.Response(body=body, status=status, content_type=content_type.split(";")[0])
        if ";" in content_type:
            response.headers["Content-Type"] = content_type
        if ctx is not None and ctx.warnings:
            for warning in ctx.warnings:
                response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        return response

    def _error(
        self, request: web.BaseRequest, error: StatusError, ctx: RequestContext
    ) -> web.Response:
        body, content_type = dumps(error.status()), _JSON
        if "protobuf" in request.headers.get("Accept", ""):
            with contextlib.suppress(StatusError, ValueError):
                if parse_accept(request.headers.get("Accept", "")).protobuf:
                    body, content_type = encode_protobuf(error.status()) or body, PROTOBUF
        response = web.Response(body=body, status=error.code, content_type=content_type)
        for key, value in error.headers.items():
            response.headers[key] = value
        for warning in ctx.warnings:
            response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        return response

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(
        self, request: web.BaseRequest, route: Route, ctx: RequestContext
    ) -> web.StreamResponse:
        kind = route.kind
        if kind == "resource":
            if route.name and streaming_verb(route) is not None:
                self._resource_type(route)
                return await self._streaming.handle(request, route)
            return await self._resource(request, route, ctx)
        if request.method not in ("GET", "HEAD"):
            raise StatusError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if kind == "version":
            return self._respond(request, self._info.document)
        if kind == "health":
            return web.Response(text="ok", content_type="text/plain")
        if kind in ("api", "apis"):
            accept = parse_accept(request.headers.get("Accept", ""))
            if accept.discovery:
                body = self.discovery.aggregated(legacy=kind == "api", version=accept.discovery)
                return self._respond(
                    request,
                    body,
                    content_type=f"application/json;g=apidiscovery.k8s.io;v={accept.discovery};as=APIGroupDiscoveryList",
                )
            return self._respond(
                request,
                self.discovery.api_versions() if kind == "api" else self.discovery.api_groups(),
            )
        if kind == "group":
            document = self.discovery.api_group(route.group)
        elif kind == "group_version":
            document = self.discovery.resource_list(route.group, route.version)
        elif kind == "openapi_v3":
            document = self._openapi.v3_index()
        elif kind == "openapi_v3_gv":
            document = self._openapi.v3_document(route.extra)
        elif kind == "openapi_v2":
            accept_header = request.headers.get("Accept", "")
            if "protobuf" in accept_header and "json" not in accept_header:
                raise StatusError(
                    406, "NotAcceptable", "only application/json is served for /openapi/v2"
                )
            document = self._openapi.v2()
        else:
            document = None
        if document is None:
            raise _NOT_FOUND
        return self._respond(request, document)

    def _resource_type(self, route: Route) -> ResourceType:
        rt = self._catalog.lookup(route.group, route.version, route.plural)
        if rt is None:
            raise _NOT_FOUND
        if route.namespace and not rt.namespaced:
            raise _NOT_FOUND
        if route.subresource and route.subresource not in rt.subresources:
            raise _NOT_FOUND
        return rt

    async def _read_body(
        self,
        request: web.BaseRequest,
        *,
        patch: bool = False,
        ctx: RequestContext | None = None,
        rt: ResourceType | None = None,
        subresource: str = "",
    ) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise StatusError(
                413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}"
            )
        body = await _receive(request)
        if not body:
            return None
        if ctx is not None and len(body) >= LARGE_BODY:
            ctx.large_body = True
        content_type = request.headers.get("Content-Type", _JSON)
        if rt is not None and is_protobuf(content_type):
            return decode_protobuf_body(body, rt, patch=patch, subresource=subresource)
        decoded = decode_body(content_type, body, patch=patch)
        if ctx is not None and decoded.duplicates:
            ctx.duplicate_fields.extend(decoded.duplicates)
        return decoded.value

    async def _resource(
        self, request: web.BaseRequest, route: Route, ctx: RequestContext
    ) -> web.StreamResponse:
        rt = self._resource_type(route)
        method = request.method
        query = request.query
        namespace = route.namespace
        name = route.name
        sub = route.subresource
        accept = parse_accept(request.headers.get("Accept", ""))
        if accept.protobuf_only and (not accept.protobuf or (rt.custom and sub != "scale")):
            # Negotiated before anything is read or written, as kube-apiserver does.
            raise not_acceptable(["application/json", "application/yaml"])
        if (rt.group, rt.plural) in REVIEW_RESOURCES:
            if method != "POST" or name:
                raise method_not_supported(
                    rt.group, rt.plural, _WRITE_VERBS.get(method, method.lower())
                )
            body = await self._read_body(request, rt=rt)
            user = request.get(USER_KEY) or LOOPBACK_ADMIN
            review = await self._access.review(rt.plural, namespace, body, user)
            return self._respond(request, dumps(review), 201, accept=accept)
        if method == "GET":
            if name:
                stored = await self._rest.get(rt, namespace, name)
                if sub == "scale":
                    return self._respond(
                        request,
                        dumps(self._rest.scale_of(rt, self._rest.decode(rt, stored))),
                        accept=accept,
                    )
                return self._single(request, rt, self._rest.render(rt, stored), accept)
            if rt.namespaced is False and namespace:
                raise _NOT_FOUND
            if _flag(query, "watch"):
                return await self._watch(request, rt, namespace or None, accept)
            return await self._list(request, rt, namespace or None, accept)
        if method == "POST":
            if sub == "token" and rt.group == "" and rt.plural == "serviceaccounts" and name:
                body = await self._read_body(request, rt=rt, subresource=sub)
                issued = await self._access.token_request(namespace, name, body or {})
                return self._respond(request, dumps(issued), 201, accept=accept)
            if sub == "binding" and name:
                body = await self._read_body(request, rt=rt, subresource=sub)
                await self._rest.bind(rt, namespace, name, body or {}, ctx)
                success = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                }
                return self._respond(request, dumps(success), 201, accept=accept)
            if name:
                raise method_not_supported(rt.group, rt.plural, "create")
            if rt.namespaced and not namespace:
                raise _NOT_FOUND
            body = await self._read_body(request, ctx=ctx, rt=rt)
            if body is None:
                raise bad_request("the body of the request was empty")
            stored = await self._rest.create(rt, namespace, body, _write_options(query), ctx)
            request[_CREATED_NAME] = stored.name
            return self._respond(
                request, self._rest.render(rt, stored), 201, ctx=ctx, accept=accept
            )
        if not name:
            if method == "DELETE":
                return await self._delete_collection(request, rt, namespace, ctx)
            raise method_not_supported(
                rt.group, rt.plural, _WRITE_VERBS.get(method, method.lower())
            )
        if method == "PUT":
            body = await self._read_body(request, ctx=ctx, rt=rt, subresource=sub)
            if body is None:
                raise bad_request("the body of the request was empty")
            options = _write_options(query)
            if sub == "scale":
                return self._respond(
                    request,
                    dumps(
                        await self._rest.set_scale(
                            rt, namespace, name, body, options=options, ctx=ctx
                        )
                    ),
                    200,
                    ctx=ctx,
                    accept=accept,
                )
            if sub == "finalize":
                finalizers = (
                    list((body.get("spec") or {}).get("finalizers") or [])
                    if isinstance(body, dict)
                    else []
                )
                stored = await self._rest.finalize_namespace(name, finalizers, ctx)
                return self._respond(
                    request, self._rest.render(rt, stored), 200, ctx=ctx, accept=accept
                )
            stored, created = await self._rest.update(
                rt, namespace, name, body, options=options, ctx=ctx, subresource=sub
            )
            return self._respond(
                request,
                self._rest.render(rt, stored),
                201 if created else 200,
                ctx=ctx,
                accept=accept,
            )
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            body = await self._read_body(request, ctx=ctx, patch=True, rt=rt, subresource=sub)
            if body is None:
                raise bad_request("the body of the request was empty")
            options = _write_options(query)
            if sub == "scale":
                stored = await self._rest.get(rt, namespace, name)
                scale = self._rest.scale_of(rt, self._rest.decode(rt, stored))
                from kaito.apimachinery import json_patch, merge_patch

                patched = (
                    json_patch(scale, body)
                    if content_type == "application/json-patch+json"
                    else merge_patch(scale, body)
                )
                return self._respond(
                    request,
                    dumps(
                        await self._rest.set_scale(
                            rt, namespace, name, patched, options=options, ctx=ctx
                        )
                    ),
                    200,
                    ctx=ctx,
                    accept=accept,
                )
            stored, created = await self._rest.patch(
                rt, namespace, name, content_type, body, options=options, ctx=ctx, subresource=sub
            )
            return self._respond(
                request,
                self._rest.render(rt, stored),
                201 if created else 200,
                ctx=ctx,
                accept=accept,
            )
        if method == "DELETE":
            body = await self._read_body(request, rt=rt, subresource=sub)
            delete_options = self._delete_options(query, body)
            outcome = await self._rest.delete(rt, namespace, name, delete_options, ctx)
            if not outcome.deleted or rt.plural == "namespaces":
                assert outcome.obj is not None
                return self._respond(
                    request, self._rest.render(rt, outcome.obj), 200, ctx=ctx, accept=accept
                )
            details: Obj = {"name": name, "kind": rt.plural}
            if rt.group:
                details["group"] = rt.group
            if outcome.obj is not None:
                details["uid"] = outcome.obj.uid
            return self._respond(
                request,
                dumps(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    }
                ),
                200,
                ctx=ctx,
                accept=accept,
            )
        raise StatusError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _delete_options(self, query: Any, body: Any) -> DeleteOptions:
        body = body if isinstance(body, dict) else {}
        preconditions = body.get("preconditions") or {}
        policy = body.get("propagationPolicy") or query.get("propagationPolicy")
        if (
            body.get("orphanDependents") is True
            or query.get("orphanDependents", "").lower() == "true"
        ):
            policy = policy or "Orphan"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Background", "Foreground", "Orphan"'
            )
        dry_run = body.get("dryRun") or query.getall("dryRun", [])
        grace = body.get("gracePeriodSeconds", _int(query, "gracePeriodSeconds"))
        return DeleteOptions(
            propagation_policy=policy,
            grace_period_seconds=grace,
            precondition_uid=preconditions.get("uid"),
            precondition_rv=preconditions.get("resourceVersion"),
            dry_run=bool(dry_run),
        )

    def _single(
        self, request: web.BaseRequest, rt: ResourceType, data: bytes, accept: Accept
    ) -> web.Response:
        if accept.table:
            obj = loads(data)
            rendered = table(
                rt,
                [obj],
                now=self._clock(),
                rv=obj["metadata"].get("resourceVersion", ""),
                include=request.query.get("includeObject", "Metadata"),
            )
            return self._respond(request, dumps(rendered))
        if accept.metadata_only:
            return self._respond(request, dumps(metadata_only(loads(data))))
        return self._respond(request, data, accept=accept)

    def _selectors(self, rt: ResourceType, query: Any) -> tuple[Any, Any]:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(
            query.get("fieldSelector"), rt.all_selectable_fields, custom=rt.custom
        )
        return labels, fields

    async def _list(
        self, request: web.BaseRequest, rt: ResourceType, namespace: str | None, accept: Accept
    ) -> web.Response:
        query = request.query
        labels, fields = self._selectors(rt, query)
        options = ListOptions(
            label_selector=labels,
            field_selector=fields,
            limit=_int(query, "limit") or 0,
            continue_token=query.get("continue", ""),
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
        )
        result = await self._rest.list(rt, namespace, options)
        if accept.table or accept.metadata_only:
            objects = [self._rest.decode(rt, s) for s in result.items]
            if accept.table:
                body = table(
                    rt,
                    objects,
                    now=self._clock(),
                    rv=str(result.rv),
                    include=query.get("includeObject", "Metadata"),
                    continue_token=result.continue_token,
                    remaining=result.remaining,
                )
            else:
                meta: Obj = {"resourceVersion": str(result.rv)}
                if result.continue_token:
                    meta["continue"] = result.continue_token
                body = {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [metadata_only(o) for o in objects],
                }
            return self._respond(request, dumps(body))
        meta_bytes = b'{"resourceVersion":"' + str(result.rv).encode() + b'"'
        if result.continue_token:
            meta_bytes += b',"continue":"' + result.continue_token.encode() + b'"'
        if result.remaining is not None:
            meta_bytes += b',"remainingItemCount":' + str(result.remaining).encode()
        if self._rest.converts(rt):
            items = b",".join(self._rest.render(rt, s) for s in result.items)
        else:
            items = b",".join([s.data for s in result.items])
        payload = (
            b'{"kind":"'
            + rt.list_kind.encode()
            + b'","apiVersion":"'
            + rt.api_version.encode()
            + b'","metadata":'
            + meta_bytes
            + b'},"items":['
            + items
            + b"]}"
        )
        return self._respond(request, payload, accept=accept)

    async def _delete_collection(
        self, request: web.BaseRequest, rt: ResourceType, namespace: str, ctx: RequestContext
    ) -> web.Response:
        query = request.query
        labels, fields = self._selectors(rt, query)
        body = await self._read_body(request, rt=rt)
        options = self._delete_options(query, body)
        result = await self._rest.list(
            rt, namespace or None, ListOptions(label_selector=labels, field_selector=fields)
        )
        deleted = []
        for stored in result.items:
            try:
                outcome = await self._rest.delete(rt, stored.namespace, stored.name, options, ctx)
            except StatusError as error:
                if error.code == 404:
                    continue
                raise
            if outcome.obj is not None:
                deleted.append(self._rest.render(rt, outcome.obj))
        payload = (
            b'{"kind":"'
            + rt.list_kind.encode()
            + b'","apiVersion":"'
            + rt.api_version.encode()
            + b'","metadata":{"resourceVersion":"'
            + str(self._rest.store.resource_version).encode()
            + b'"},"items":['
            + b",".join(deleted)
            + b"]}"
        )
        return self._respond(
            request, payload, 200, ctx=ctx, accept=parse_accept(request.headers.get("Accept", ""))
        )

    # ------------------------------------------------------------------ watch

    def _frame(self, rt: ResourceType, item: WatchItem, accept: Accept, include: str) -> bytes:
        if item.obj is None:
            meta: Obj = {"resourceVersion": str(item.rv), "creationTimestamp": None}
            if item.initial_events_end:
                meta["annotations"] = {INITIAL_EVENTS_END: "true"}
            bookmark = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
            if accept.protobuf:
                return watch_frame(item.type, bookmark)
            obj = dumps(bookmark)
        elif accept.protobuf:
            return watch_frame(item.type, loads(self._rest.render(rt, item.obj)))
        elif accept.table:
            decoded = self._rest.decode(rt, item.obj)
            obj = dumps(table(rt, [decoded], now=self._clock(), rv=str(item.rv), include=include))
        elif accept.metadata_only:
            obj = dumps(metadata_only(self._rest.decode(rt, item.obj)))
        else:
            obj = self._rest.render(rt, item.obj)
        return b'{"type":"' + item.type.encode() + b'","object":' + obj + b"}\n"

    async def _watch(
        self, request: web.BaseRequest, rt: ResourceType, namespace: str | None, accept: Accept
    ) -> web.StreamResponse:
        query = request.query
        labels, fields = self._selectors(rt, query)
        initial = query.get("sendInitialEvents")
        options = WatchOptions(
            label_selector=labels,
            field_selector=fields,
            resource_version=query.get("resourceVersion", ""),
            send_initial_events=None if initial is None else initial.lower() == "true",
        )
        timeout = _int(query, "timeoutSeconds")
        bookmarks = _flag(query, "allowWatchBookmarks")
        include = query.get("includeObject", "Metadata")
        if accept.protobuf and rt.custom:
            if accept.protobuf_only:
                raise not_acceptable(["application/json", "application/yaml"])
            accept = attrs.evolve(accept, protobuf=False)
        content_type = PROTOBUF_WATCH if accept.protobuf else _JSON
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        try:
            stream = await self._rest.watch(rt, namespace, options)
        except StatusError as error:
            if error.code not in (410, 504):  # after the version parsed: an ERROR event
                raise
            await response.prepare(request)
            if accept.protobuf:
                await response.write(watch_frame("ERROR", error.status()))
            else:
                await response.write(b'{"type":"ERROR","object":' + dumps(error.status()) + b"}\n")
            await response.write_eof()
            return response
        handle = _HttpWatch(rt.gr, stream, request)
        unregister = self._faults.register_watch(handle)
        try:
            await response.prepare(request)
            deadline = None if timeout is None else anyio.current_time() + timeout
            while True:
                wait = self._bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - anyio.current_time()
                    if left <= 0:
                        break
                    wait = left if wait is None else min(wait, left)
                result: Any = _TIMED_OUT
                if wait is None:
                    result = await stream.next()
                else:
                    with anyio.move_on_after(wait):
                        result = await stream.next()
                if result is _TIMED_OUT:
                    current = self._rest.store.resource_version
                    if bookmarks and current >= stream.resource_version:  # never backwards
                        bookmark = WatchItem("BOOKMARK", None, current)
                        await response.write(self._frame(rt, bookmark, accept, include))
                    continue
                if result is None:
                    break
                items: list[WatchItem] = result
                await response.write(
                    b"".join(self._frame(rt, item, accept, include) for item in items)
                )
            if not handle.aborted:
                await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            unregister()
            stream.close()
        return response
