"""Engine layer: records core/v1 Events about objects, so ``kubectl describe`` tells the story."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from kaito.engine._client import ObjectClient
from kaito.engine._resources import Resource

__all__ = ("EVENTS", "EventRecorder")

JSON = dict[str, Any]
EVENTS = Resource("", "v1", "events", "Event")
log = structlog.get_logger("kaito.engine._events")


class EventRecorder:
    """Creates ``Event`` objects for a component; failures are logged, never raised.

    Events are written one per call (no client-side aggregation, unlike client-go's
    recorder), in the involved object's namespace (``default`` for cluster-scoped ones).
    """

    def __init__(self, client: ObjectClient, component: str, instance: str | None = None) -> None:
        self.client = client
        self.component = component
        self.instance = instance or socket.gethostname()

    async def event(
        self,
        obj: JSON,
        reason: str,
        message: str,
        type: Literal["Normal", "Warning"] = "Normal",
    ) -> JSON | None:
        """Record ``reason``/``message`` about ``obj``; return the Event, or ``None`` on failure."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "action": reason,
            "count": 1,
        }
        try:
            return await self.client.create(EVENTS, event, namespace=namespace)
        except Exception as exc:
            log.warning("event_record_failed", reason=reason, error=repr(exc))
            return None
