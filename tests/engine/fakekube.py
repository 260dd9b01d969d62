"""An in-memory Kubernetes API for engine tests: objects, resourceVersions, watches, faults.

``FakeKube`` implements the engine's ``ListWatcher`` plus the writes the engine's client
offers, so informers and controllers run against it directly; ``fakeserver.py`` serves the
same state over HTTP for the real ``KubeClient``.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from kaito.engine.client import ObjectList, WatchEvent
from kaito.engine.errors import ApiError
from kaito.engine.keys import ObjectKey
from kaito.engine.resources import Resource

JSON = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def matches_selector(obj: JSON, selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        name, sep, value = term.partition("=")
        if sep:
            if labels.get(name.strip()) != value.strip().lstrip("="):
                return False
        elif term.strip() not in labels:
            return False
    return True


class _Watcher:
    def __init__(
        self,
        resource: Resource,
        namespace: str | None,
        selector: str | None,
        send: MemoryObjectSendStream[WatchEvent | BaseException],
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self.send = send

    def wants(self, resource: Resource, obj: JSON) -> bool:
        if resource != self.resource:
            return False
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        if self.namespace and ns != self.namespace:
            return False
        return matches_selector(obj, self.selector)


class FakeKube:
    """The state of a tiny API server, with fault injection for tests."""

    def __init__(self, *resources: Resource, history: int = 10_000) -> None:
        self.resources = {(r.group, r.version, r.plural): r for r in resources}
        self.objects: dict[Resource, dict[ObjectKey, JSON]] = {r: {} for r in resources}
        self.rv = 100
        self.history: list[tuple[int, Resource, str, JSON]] = []
        self.history_limit = history
        self.compacted_rv = 0
        self.watchers: list[_Watcher] = []
        self.faults: dict[str, list[ApiError | BaseException]] = {}
        self.calls: dict[str, int] = {}
        self.watch_requests: list[str | None] = []
        self._uids = itertools.count(1)

    # -- fault injection ------------------------------------------------------------------

    def fail_next(self, op: str, error: ApiError | BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``op`` (list, watch, get, create, ...) raise."""
        self.faults.setdefault(op, []).extend([error] * times)

    def compact(self) -> None:
        """Forget the event history: watches from older versions now get 410 Gone."""
        self.compacted_rv = self.rv
        self.history.clear()

    def drop_watches(self, error: BaseException | None = None) -> int:
        """End every open watch (with ``error`` raised in the reader if given)."""
        dropped = 0
        for watcher in list(self.watchers):
            if error is not None:
                watcher.send.send_nowait(error)
            watcher.send.close()
            dropped += 1
        self.watchers.clear()
        return dropped

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every watch."""
        for watcher in self.watchers:
            obj = {"kind": watcher.resource.kind, "metadata": {"resourceVersion": str(self.rv)}}
            watcher.send.send_nowait(WatchEvent("BOOKMARK", obj))

    def _check(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        queued = self.faults.get(op)
        if queued:
            raise queued.pop(0)

    # -- reads ----------------------------------------------------------------------------

    def _resource(self, resource: Resource) -> dict[ObjectKey, JSON]:
        try:
            return self.objects[resource]
        except KeyError:
            raise ApiError(404, "NotFound", f"the server could not find {resource}") from None

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ObjectList:
        self._check("list")
        await anyio.lowlevel.checkpoint()
        items = [
            copy.deepcopy(obj)
            for key, obj in sorted(self._resource(resource).items(), key=lambda kv: str(kv[0]))
            if (not namespace or key.namespace == namespace)
            and matches_selector(obj, label_selector)
        ]
        start = 0
        list_rv = self.rv
        if continue_token:
            rv_text, _, offset = continue_token.partition(":")
            if int(rv_text) <= self.compacted_rv:
                raise ApiError(410, "Expired", "the continue token has expired")
            start, list_rv = int(offset), int(rv_text)
        end = len(items) if not limit else start + limit
        token = f"{list_rv}:{end}" if end < len(items) else None
        return ObjectList(items[start:end], str(list_rv), token)

    async def get(self, resource: Resource, key: ObjectKey) -> JSON:
        self._check("get")
        await anyio.lowlevel.checkpoint()
        obj = self._resource(resource).get(key)
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource.plural} "{key.name}" not found')
        return copy.deepcopy(obj)

    @asynccontextmanager
    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        self._check("watch")
        self.watch_requests.append(resource_version)
        send, recv = anyio.create_memory_object_stream[WatchEvent | BaseException](10**9)
        watcher = _Watcher(resource, namespace, label_selector, send)
        if resource_version and int(resource_version) < self.compacted_rv:
            send.send_nowait(
                ApiError(410, "Expired", f"too old resource version: {resource_version}")
            )
        elif resource_version:
            for rv, res, kind, obj in self.history:
                if rv > int(resource_version) and watcher.wants(res, obj):
                    send.send_nowait(WatchEvent(kind, copy.deepcopy(obj)))
        else:
            for obj in self._resource(resource).values():
                if watcher.wants(resource, obj):
                    send.send_nowait(WatchEvent("ADDED", copy.deepcopy(obj)))
        self.watchers.append(watcher)

        async def events() -> AsyncIterator[WatchEvent]:
            async for item in recv:
                if isinstance(item, BaseException):
                    raise item
                yield item

        try:
            yield events()
        finally:
            if watcher in self.watchers:
                self.watchers.remove(watcher)
            send.close()
            recv.close()

    # -- writes ---------------------------------------------------------------------------

    def _emit(self, resource: Resource, kind: str, obj: JSON) -> None:
        self.history.append((self.rv, resource, kind, copy.deepcopy(obj)))
        if len(self.history) > self.history_limit:
            dropped = self.history.pop(0)
            self.compacted_rv = dropped[0]
        for watcher in self.watchers:
            if watcher.wants(resource, obj):
                watcher.send.send_nowait(WatchEvent(kind, copy.deepcopy(obj)))

    def _bump(self, obj: JSON) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    async def create(self, resource: Resource, obj: JSON, *, namespace: str | None = None) -> JSON:
        self._check("create")
        await anyio.lowlevel.checkpoint()
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace:
            meta["namespace"] = namespace
        if resource.namespaced and not meta.get("namespace"):
            meta["namespace"] = "default"
        key = ObjectKey.of(obj)
        objects = self._resource(resource)
        if key in objects:
            raise ApiError(409, "AlreadyExists", f'{resource.plural} "{key.name}" already exists')
        meta["uid"] = str(uuid.UUID(int=next(self._uids)))
        meta["generation"] = 1
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self._bump(obj)
        objects[key] = obj
        self._emit(resource, "ADDED", obj)
        return copy.deepcopy(obj)

    def _store_update(self, resource: Resource, key: ObjectKey, new: JSON, old: JSON) -> JSON:
        old_body = {k: v for k, v in old.items() if k not in ("metadata", "status")}
        new_body = {k: v for k, v in new.items() if k not in ("metadata", "status")}
        if old_body != new_body:
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._bump(new)
        self._resource(resource)[key] = new
        self._emit(resource, "MODIFIED", new)
        return copy.deepcopy(new)

    async def patch(
        self,
        resource: Resource,
        key: ObjectKey,
        patch: JSON,
        *,
        subresource: str | None = None,
        **_: Any,
    ) -> JSON:
        self._check("patch")
        await anyio.lowlevel.checkpoint()
        old = self._resource(resource).get(key)
        if old is None:
            raise ApiError(404, "NotFound", f'{resource.plural} "{key.name}" not found')
        if subresource == "status":
            new = merge_patch(old, {"status": patch.get("status")})
        else:
            patch = {k: v for k, v in patch.items() if k != "status"}
            new = merge_patch(old, patch)
        new["metadata"]["uid"] = old["metadata"]["uid"]
        return self._store_update(resource, key, new, old)

    async def patch_status(self, resource: Resource, key: ObjectKey, status: JSON) -> JSON:
        return await self.patch(resource, key, {"status": status}, subresource="status")

    async def replace(
        self, resource: Resource, obj: JSON, *, subresource: str | None = None
    ) -> JSON:
        self._check("update")
        await anyio.lowlevel.checkpoint()
        key = ObjectKey.of(obj)
        old = self._resource(resource).get(key)
        if old is None:
            raise ApiError(404, "NotFound", f'{resource.plural} "{key.name}" not found')
        sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified; please retry")
        new = copy.deepcopy(obj)
        new["metadata"]["uid"] = old["metadata"]["uid"]
        return self._store_update(resource, key, new, old)

    async def delete(self, resource: Resource, key: ObjectKey, **_: Any) -> None:
        self._check("delete")
        await anyio.lowlevel.checkpoint()
        obj = self._resource(resource).pop(key, None)
        if obj is None:
            return
        self._bump(obj)
        self._emit(resource, "DELETED", obj)

    # -- direct helpers for tests ---------------------------------------------------------

    def put(self, resource: Resource, name: str, namespace: str = "default", **fields: Any) -> JSON:
        """Create an object synchronously (test set-up)."""
        obj: JSON = {"metadata": {"name": name, "namespace": namespace}, **fields}
        if not resource.namespaced:
            del obj["metadata"]["namespace"]
        meta = obj["metadata"]
        meta["uid"] = str(uuid.UUID(int=next(self._uids)))
        meta["generation"] = 1
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self._bump(obj)
        self.objects[resource][ObjectKey.of(obj)] = obj
        self._emit(resource, "ADDED", obj)
        return obj

    def remove(self, resource: Resource, key: ObjectKey) -> None:
        """Delete an object synchronously (test set-up)."""
        obj = self.objects[resource].pop(key)
        self._bump(obj)
        self._emit(resource, "DELETED", obj)

    def set_field(self, resource: Resource, key: ObjectKey, **fields: Any) -> JSON:
        """Change top-level fields synchronously (test set-up)."""
        old = self.objects[resource][key]
        new = copy.deepcopy(old)
        new.update(fields)
        return self._store_update(resource, key, new, old)
