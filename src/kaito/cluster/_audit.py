"""The API server's audit log: one event per request at level ``Metadata``, as kube-apiserver's
``audit.k8s.io/v1`` backend writes it (who, what verb on which object, and the answer's code).

Off until someone records: :meth:`AuditLog.record` collects the events of a block (tests count
the writes of each client with it, or derive the permissions a client used); nothing is kept
otherwise. A watch is recorded when it starts (stage ``ResponseStarted``), every other request
when it is answered (``ResponseComplete``). A create carries the created object's name, as
kube-apiserver fills ``objectRef.name`` from the request object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

__all__ = ("AuditEvent", "AuditLog")

#: The write verbs (what ``AuditLog.writes`` keeps).
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@attrs.frozen
class AuditEvent:
    """One audited request."""

    stage: str
    verb: str
    user: str
    groups: tuple[str, ...]
    extra: Mapping[str, tuple[str, ...]]
    user_agent: str
    request_uri: str
    code: int
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    #: When the API server received the request (``requestReceivedTimestamp``).
    received: dt.datetime | None = None

    @property
    def is_write(self) -> bool:
        """Whether the request asked to change something."""
        return self.verb in WRITE_VERBS

    def to_dict(self) -> dict[str, Any]:
        """The ``audit.k8s.io/v1`` ``Event`` (level ``Metadata``)."""
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "stage": self.stage,
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": {"username": self.user, "groups": list(self.groups)},
            "userAgent": self.user_agent,
            "responseStatus": {"metadata": {}, "code": self.code},
        }
        if self.received is not None:
            event["requestReceivedTimestamp"] = self.received.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if self.extra:
            event["user"]["extra"] = {k: list(v) for k, v in self.extra.items()}
        if self.resource:
            ref = {
                "resource": self.resource,
                "namespace": self.namespace,
                "name": self.name,
                "apiGroup": self.api_group,
                "apiVersion": self.api_version,
                "subresource": self.subresource,
            }
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        return event


class AuditLog:
    """Where the API server reports each request; recorders collect them."""

    def __init__(self) -> None:
        self._sinks: list[Callable[[AuditEvent], None]] = []

    @property
    def active(self) -> bool:
        """Whether anyone is recording (the server skips building events otherwise)."""
        return bool(self._sinks)

    def emit(self, event: AuditEvent) -> None:
        """Hand ``event`` to every recorder (called by the HTTP layer)."""
        for sink in list(self._sinks):
            sink(event)

    @contextmanager
    def record(
        self, where: Callable[[AuditEvent], bool] | None = None
    ) -> Iterator[list[AuditEvent]]:
        """Collect the events of the ``with`` block (those ``where`` accepts) into a list."""
        events: list[AuditEvent] = []

        def sink(event: AuditEvent) -> None:
            if where is None or where(event):
                events.append(event)

        self._sinks.append(sink)
        try:
            yield events
        finally:
            self._sinks.remove(sink)
