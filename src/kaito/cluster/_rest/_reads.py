"""Reads: get, list with selectors and consistent pagination, and watch with resume."""

from __future__ import annotations

import base64
import binascii
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence

import attrs

from kaito.cluster._errors import StatusError, bad_request, expired
from kaito.cluster._json import dumps, loads
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest._base import RestBase
from kaito.cluster._rest._types import ListOptions, ListResult, WatchOptions
from kaito.cluster._store import (
    EventType,
    ExpiredError,
    ObjectIndex,
    StorageEvent,
    StorageWatch,
    StoredObject,
    TooLargeResourceVersionError,
)

__all__ = ("INITIAL_EVENTS_END", "ReadsMixin", "WatchItem", "WatchStream")

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_SNAPSHOTS = 256
_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a "
    "new list without the continue parameter, or use the continue token in this response to "
    "retrieve "
    "the remainder of the results. Continuing with the provided token results in an inconsistent "
    "list - "
    "objects that were created, modified, or deleted between the time the first chunk was "
    "returned and "
    "now may show up in the list."
)


@attrs.frozen
class WatchItem:
    """One event to send: its type and the stored object (or a bookmark's resource version)."""

    type: str
    obj: StoredObject | None
    rv: int
    initial_events_end: bool = False


def _parse_rv(value: str, what: str = "resourceVersion") -> int:
    try:
        rv = int(value)
    except ValueError:
        raise bad_request(
            f"{what}: Invalid value: {value!r}: must be a valid resource version"
        ) from None
    if rv < 0:
        raise bad_request(f"{what}: Invalid value: {value!r}: must be a valid resource version")
    return rv


def _too_large(error: TooLargeResourceVersionError) -> StatusError:
    """kube-apiserver's answer to a version its storage has not reached (``storage/errors.go``)."""
    return StatusError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {error.requested}, current: {error.current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
        {"Retry-After": "1"},
    )


class ReadsMixin(RestBase):
    """Get, list and watch."""

    _snapshot_ids = itertools.count(1)

    def _init_reads(self) -> None:
        self._snapshots: OrderedDict[int, Sequence[StoredObject]] = OrderedDict()

    async def get(self, rt: ResourceType, namespace: str, name: str) -> StoredObject:
        """The current object. Raises 404 ``NotFound``."""
        return await self.require(rt, namespace, name)

    def _matcher(self, rt: ResourceType, options: ListOptions | WatchOptions) -> Matcher | None:
        labels, fields = options.label_selector, options.field_selector
        if labels.empty and fields.empty:
            return None

        def matches(stored: StoredObject) -> bool:
            if not labels.empty and not labels.matches(stored.labels):
                return False
            return fields.empty or fields.matches(self.field_getter(rt, stored))

        return matches

    def _list_namespace(
        self, rt: ResourceType, namespace: str | None, options: ListOptions | WatchOptions
    ) -> str | None:
        if not rt.namespaced:
            return None
        value = options.field_selector.value_of("metadata.namespace")
        return namespace if namespace else value

    async def list(
        self, rt: ResourceType, namespace: str | None, options: ListOptions
    ) -> ListResult:
        """One page of matching objects, in key order, from a consistent snapshot.

        Raises:
            StatusError: 410 ``Expired`` for a continue token whose snapshot is gone.
        """
        ns = self._list_namespace(rt, namespace, options)
        matches = self._matcher(rt, options)
        if options.continue_token:
            rv, snapshot_id, position = self._decode_continue(options.continue_token)
            items = self._snapshots.get(snapshot_id)
            if items is None or rv < self.store.compacted_version:
                raise expired(_CONTINUE_TOO_OLD)
            self._snapshots.move_to_end(snapshot_id)
        else:
            if options.resource_version and options.resource_version_match == "Exact":
                wanted = _parse_rv(options.resource_version)
                if wanted != self.store.resource_version:
                    raise expired(
                        f"too old resource version: {wanted} ({self.store.resource_version})"
                    )
            elif options.resource_version not in ("", "0"):
                # NotOlderThan: a version the store has not reached is refused, as etcd-backed
                # kube-apiserver refuses it (the watch cache first waits 3 s for it; not here).
                wanted = _parse_rv(options.resource_version)
                if wanted > self.store.resource_version:
                    raise _too_large(
                        TooLargeResourceVersionError(wanted, self.store.resource_version)
                    )
            snapshot = await self.store.list(rt.gr, ns)
            rv, items, position, snapshot_id = snapshot.rv, snapshot.items, 0, 0
        limit = options.limit if options.limit > 0 else 0
        if not limit and matches is None and position == 0:
            return ListResult(rv, items)
        page: list[StoredObject] = []
        index = position
        total = len(items)
        while index < total and (not limit or len(page) < limit):
            stored = items[index]
            index += 1
            if matches is None or matches(stored):
                page.append(stored)
        if index >= total:
            if snapshot_id:
                self._snapshots.pop(snapshot_id, None)
            return ListResult(rv, page)
        if not snapshot_id:
            snapshot_id = next(self._snapshot_ids)
            self._snapshots[snapshot_id] = items
            while len(self._snapshots) > _SNAPSHOTS:
                self._snapshots.popitem(last=False)
        token = self._encode_continue(rv, snapshot_id, index, items[index])
        remaining = total - index if matches is None else None
        return ListResult(rv, page, token, remaining)

    @staticmethod
    def _encode_continue(rv: int, snapshot_id: int, position: int, next_item: StoredObject) -> str:
        payload = {
            "v": "meta.k8s.io/v1",
            "rv": rv,
            "start": f"{next_item.namespace}/{next_item.name}",
            "snapshot": snapshot_id,
            "pos": position,
        }
        return base64.urlsafe_b64encode(dumps(payload)).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, int, int]:
        try:
            payload = loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return int(payload["rv"]), int(payload["snapshot"]), int(payload["pos"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise bad_request(f"continue key is not valid: {token!r}") from None

    async def watch(
        self, rt: ResourceType, namespace: str | None, options: WatchOptions
    ) -> WatchStream:
        """A stream of events after ``resourceVersion`` (with initial state when it is unset or 0).

        A plain watch from a version the store has not reached yet is accepted and stays quiet
        until the store passes that version, as kube-apiserver's watch cache keeps it; a
        watch-list (``sendInitialEvents=true``) from such a version is refused with 504
        ``ResourceVersionTooLarge``.

        Raises:
            StatusError: 410 ``Expired`` when the version is older than the history window, 504
                as above (HTTP callers send both as an ``ERROR`` event, as kube-apiserver does).
        """
        ns = self._list_namespace(rt, namespace, options)
        matches = self._matcher(rt, options)
        initial: Sequence[StoredObject] = ()
        rv_text = options.resource_version
        send_initial = options.send_initial_events
        if send_initial is None:
            send_initial = rv_text in ("", "0")
        after = 0
        if send_initial:
            if options.send_initial_events and rv_text not in ("", "0"):
                wanted = _parse_rv(rv_text)
                if wanted > self.store.resource_version:
                    raise _too_large(
                        TooLargeResourceVersionError(wanted, self.store.resource_version)
                    )
            snapshot = await self.store.list(rt.gr, ns)
            since = snapshot.rv
            initial = (
                snapshot.items if matches is None else [s for s in snapshot.items if matches(s)]
            )
        else:
            since = _parse_rv(rv_text)
            if since > self.store.resource_version:
                after, since = since, self.store.resource_version
        try:
            stream = self.store.watch(rt.gr, ns, since)
        except ExpiredError as error:
            raise expired(str(error)) from None
        except TooLargeResourceVersionError as error:
            raise _too_large(error) from None
        first = [WatchItem("ADDED", s, s.rv) for s in initial]
        if options.send_initial_events:
            first.append(WatchItem("BOOKMARK", None, since, initial_events_end=True))
        return WatchStream(stream, first, matches, after=max(after, since))


Matcher = Callable[[StoredObject], bool]


class WatchStream:
    """Filtered watch events; :meth:`next` is safe to cancel (a timeout loses no events)."""

    def __init__(
        self,
        stream: StorageWatch,
        first: list[WatchItem],
        matches: Matcher | None,
        *,
        after: int = 0,
    ) -> None:
        self._stream = stream
        self._first = first
        self._matches = matches
        self.resource_version = after
        """The version the client has seen up to: events at or below it are not sent."""

    async def next(self) -> list[WatchItem] | None:
        """The next non-empty batch; ``None`` once the watch has ended."""
        if self._first:
            first, self._first = self._first, []
            return first
        while True:
            batch = await self._stream.next_batch()
            if batch is None:
                return None
            after = self.resource_version
            if self._matches is None:
                items = [
                    WatchItem(e.type.value, e.obj, e.obj.rv) for e in batch if e.obj.rv > after
                ]
            else:
                items = [
                    item
                    for event in batch
                    if event.obj.rv > after and (item := _filter(event, self._matches)) is not None
                ]
            if batch:
                self.resource_version = max(after, batch[-1].obj.rv)
            if items:
                return items

    def close(self) -> None:
        """Stop watching (idempotent)."""
        self._stream.close()


def _filter(event: StorageEvent, matches: Matcher) -> WatchItem | None:
    now = matches(event.obj)
    before = event.prev is not None and event.type is not EventType.ADDED and matches(event.prev)
    if event.type is EventType.DELETED:
        return WatchItem("DELETED", event.obj, event.obj.rv) if now or before else None
    if now and before:
        return WatchItem("MODIFIED", event.obj, event.obj.rv)
    if now:
        return WatchItem("ADDED", event.obj, event.obj.rv)
    if before and event.prev is not None:
        prev = loads(event.prev.data)
        prev["metadata"]["resourceVersion"] = str(event.obj.rv)
        gone = StoredObject(
            dumps(prev),
            event.obj.rv,
            ObjectIndex(
                event.prev.namespace,
                event.prev.name,
                event.prev.uid,
                event.prev.labels,
                event.prev.fields,
                event.prev.owners,
                event.prev.deleting,
            ),
        )
        return WatchItem("DELETED", gone, event.obj.rv)
    return None
