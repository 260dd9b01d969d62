"""Engine layer: a small dynamic client for any group/version/resource, as raw JSON dicts.

It rides on a ``kubernetes_asyncio`` ``ApiClient`` (configuration, TLS, token refresh and the
aiohttp connection pool all come from there) and skips its model classes: bodies go out and come
back as ``dict``s, and watch events stream as :class:`WatchEvent`s. The informer only needs
:class:`ListWatcher`, so tests can hand it a fake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

import aiohttp
import attrs
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio.client import ApiClient, ApiException
from yarl import URL

from kaito.engine._errors import ApiError
from kaito.engine._keys import ObjectKey
from kaito.engine._resources import Resource

__all__ = (
    "Client",
    "KubeClient",
    "ListWatcher",
    "ObjectClient",
    "ObjectList",
    "PatchType",
    "WatchEvent",
    "load_client",
)

JSON = dict[str, Any]
PatchType = Literal["merge", "json", "strategic", "apply"]
_Query = list[tuple[str, str]]
_Body = JSON | list[JSON]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@attrs.frozen
class WatchEvent:
    """One watch event: ``type`` is ADDED, MODIFIED, DELETED or BOOKMARK.

    ``raw`` is the object's JSON text exactly as the server sent it, when the client could cut
    it out of the event line without re-encoding (the informer's cache stores it as is).
    """

    type: str
    object: JSON
    raw: str | None = None


@attrs.frozen
class ObjectList:
    """One page of a LIST: the items, the list's resourceVersion and the continue token."""

    items: list[JSON]
    resource_version: str
    continue_token: str | None = None


class ListWatcher(Protocol):
    """Protocol: what an informer needs from the API (list pages and a watch stream).

    ``list`` and ``watch`` raise :class:`ApiError` for an error status or a watch ``ERROR``
    event (410, or a resourceVersion too large, means the caller must relist).
    """

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> ObjectList:
        """Return one page of the collection.

        With ``resource_version`` the page is at least that fresh (``NotOlderThan``); a
        version the server has not reached is refused (``too_large_resource_version``).
        """
        ...

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        """Open a watch (with bookmarks) from ``resource_version``; iterate its events."""
        ...


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class KubeClient:
    """Create, read, patch, delete, list and watch any resource as JSON dicts.

    Every method raises :class:`ApiError` for a non-2xx answer; connection failures surface as
    ``aiohttp.ClientError`` or ``OSError``. Nothing is retried here: controllers retry by
    requeueing, informers by their own backoff.
    """

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client
        _read_environment_once(api_client)

    async def close(self) -> None:
        """Close the underlying connection pool."""
        await self.api_client.close()

    # -- reads ----------------------------------------------------------------------------

    async def get(self, resource: Resource, key: ObjectKey) -> JSON:
        """Return the object ``key`` (``ApiError`` with ``not_found`` if it does not exist)."""
        return await self._json("GET", resource.object_path(key))

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> ObjectList:
        query: _Query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if limit:
            query.append(("limit", str(limit)))
        if continue_token:
            query.append(("continue", continue_token))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        body = await self._json("GET", resource.path(namespace), query=query)
        meta = body.get("metadata") or {}
        return ObjectList(
            items=body.get("items") or [],
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_token=meta.get("continue") or None,
        )

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        query = [("watch", "true"), ("allowWatchBookmarks", "true")]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", str(timeout_seconds)))
        return self._watch(resource.path(namespace), query, timeout_seconds)

    @asynccontextmanager
    async def _watch(
        self, path: str, query: _Query, timeout_seconds: int | None
    ) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        timeout = aiohttp.ClientTimeout(
            total=None if timeout_seconds is None else timeout_seconds + 30
        )
        resp = await self._send("GET", path, query=query, client_timeout=timeout)
        try:
            if resp.status >= 300:
                raise await _error_of(resp)
            yield _events(resp)
        finally:
            resp.release()

    # -- writes ---------------------------------------------------------------------------

    async def create(self, resource: Resource, obj: JSON, *, namespace: str | None = None) -> JSON:
        """Create ``obj`` (in ``namespace``, or the one in its metadata)."""
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self._json("POST", resource.path(ns), body=obj)

    async def replace(
        self, resource: Resource, obj: JSON, *, subresource: str | None = None
    ) -> JSON:
        """PUT ``obj`` (optimistic concurrency on its ``metadata.resourceVersion``)."""
        path = resource.object_path(ObjectKey.of(obj), subresource)
        return await self._json("PUT", path, body=obj)

    async def patch(
        self,
        resource: Resource,
        key: ObjectKey,
        patch: _Body,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> JSON:
        """Patch ``key`` with a merge (default), JSON, strategic or server-side-apply patch."""
        query: _Query = []
        if field_manager:
            query.append(("fieldManager", field_manager))
        if force:
            query.append(("force", "true"))
        return await self._json(
            "PATCH",
            resource.object_path(key, subresource),
            query=query,
            body=patch,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )

    async def patch_status(self, resource: Resource, key: ObjectKey, status: JSON) -> JSON:
        """Merge-patch ``{"status": status}`` into the status subresource of ``key``."""
        return await self.patch(resource, key, {"status": status}, subresource="status")

    async def delete(
        self,
        resource: Resource,
        key: ObjectKey,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
    ) -> None:
        """Delete ``key``; a 404 is not an error (it is already gone)."""
        body = {"propagationPolicy": propagation_policy} if propagation_policy else None
        try:
            await self._json("DELETE", resource.object_path(key), body=body)
        except ApiError as err:
            if not err.not_found:
                raise

    # -- plumbing -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: _Query | None = None,
        body: _Body | None = None,
        content_type: str = "application/json",
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            resp: aiohttp.ClientResponse = await self.api_client.call_api(
                path,
                method,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=client_timeout,
            )
        except ApiException as exc:  # only raised for malformed requests
            raise ApiError(exc.status or 0, str(exc.reason or ""), str(exc.body or "")) from exc
        return resp

    async def _json(
        self,
        method: str,
        path: str,
        *,
        query: _Query | None = None,
        body: _Body | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        resp = await self._send(method, path, query=query, body=body, content_type=content_type)
        try:
            if resp.status >= 300:
                raise await _error_of(resp)
            data = await resp.read()
        finally:
            resp.release()
        if not data:
            return {}
        decoded: JSON = json.loads(data)
        return decoded


def _read_environment_once(api_client: ApiClient) -> None:
    """Resolve the proxy for the API server now, instead of on every request.

    ``kubernetes_asyncio`` opens its aiohttp session with ``trust_env=True``, so aiohttp reads
    the proxy variables and parses ``~/.netrc`` in a worker thread on every request: two
    thread hops and a file parse per call, most of the client-side cost of a small PATCH.
    client-go reads the proxy environment once; so do we, then turn the per-request lookups
    off. ``.netrc`` is not a Kubernetes credential source, so nothing else changes.
    """
    rest = getattr(api_client, "rest_client", None)
    session = getattr(rest, "pool_manager", None)
    if rest is None or not isinstance(session, aiohttp.ClientSession) or not session.trust_env:
        return
    if not rest.proxy:
        try:
            proxy, auth = get_env_proxy_for_url(URL(str(api_client.configuration.host)))
        except (LookupError, ValueError):
            pass
        else:
            if auth is not None:  # credentials ride in the URL, for plain and CONNECT proxying
                proxy = proxy.with_user(auth.login).with_password(auth.password)
            rest.proxy = str(proxy)
    session._trust_env = False


async def _error_of(resp: aiohttp.ClientResponse) -> ApiError:
    raw = await resp.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"message": raw.decode("utf-8", "replace")[:500]}
    if not isinstance(body, dict):
        body = {}
    err = ApiError.from_status(resp.status, body, _retry_after(resp.headers))
    if not err.reason:
        err.reason = resp.reason or ""
    return err


def _object_text(line: str, kind: str, event: JSON) -> str | None:
    """Cut the object's text out of ``{"type":"X","object":{...}}`` (the API server's shape)."""
    prefix = f'{{"type":"{kind}","object":'
    if len(event) != 2 or not line.startswith(prefix):
        return None
    end = line.rstrip()
    if not end.endswith("}"):
        return None
    return end[len(prefix) : -1]


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[WatchEvent]:
    async for raw_line in resp.content:
        line = raw_line.decode("utf-8")
        if not line.strip():
            continue
        event = json.loads(line)
        kind = event.get("type")
        obj = event.get("object")
        if kind == "ERROR":
            raise ApiError.from_status(500, obj if isinstance(obj, dict) else {})
        if not isinstance(kind, str) or not isinstance(obj, dict):
            raise ValueError(f"watch event {line[:200]!r} has no 'type' and 'object'")
        yield WatchEvent(kind, obj, _object_text(line, kind, event))


async def load_client(kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
    """Return a client configured in-cluster, or else from a kubeconfig (``$KUBECONFIG``).

    ``kubeconfig`` and ``context`` force a particular file and context.
    """
    from kubernetes_asyncio import config
    from kubernetes_asyncio.client import Configuration

    configuration = Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return KubeClient(ApiClient(configuration))
        except config.ConfigException:
            pass
    await config.load_kube_config(
        config_file=kubeconfig, context=context, client_configuration=configuration
    )
    return KubeClient(ApiClient(configuration))


class ObjectClient(Protocol):
    """Protocol: the object reads and writes controllers, leader election and events use."""

    async def get(self, resource: Resource, key: ObjectKey) -> JSON:
        """Return the object ``key``; raise ``ApiError`` (404) if missing."""
        ...

    async def create(self, resource: Resource, obj: JSON, *, namespace: str | None = None) -> JSON:
        """Create ``obj``."""
        ...

    async def replace(
        self, resource: Resource, obj: JSON, *, subresource: str | None = None
    ) -> JSON:
        """PUT ``obj`` with optimistic concurrency."""
        ...

    async def patch_status(self, resource: Resource, key: ObjectKey, status: JSON) -> JSON:
        """Merge-patch the status subresource."""
        ...

    async def delete(self, resource: Resource, key: ObjectKey) -> None:
        """Delete ``key`` (missing is fine)."""
        ...


class Client(ListWatcher, ObjectClient, Protocol):
    """Protocol: everything a :class:`~kaito.engine._manager.Manager` needs from the API."""
