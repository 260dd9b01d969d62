"""The kubelet's Events about a Pod (``Pulled``, ``Started``, ``BackOff``, ``Unhealthy``...), with
repeats folded into one Event whose ``count`` grows, as client-go's recorder does."""

from __future__ import annotations

import secrets

import structlog

from kaito.cluster._client import LocalClient
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj
from kaito.cluster._meta import TimeSource, format_time

__all__ = ("PodEvents",)

log = structlog.get_logger(__name__)


class PodEvents:
    """Records Events about one Pod as the kubelet of ``node``."""

    def __init__(self, client: LocalClient, pod: Obj, node: str, clock: TimeSource) -> None:
        self._client = client
        self._pod = pod
        self._node = node
        self._clock = clock
        self._seen: dict[tuple[str, str, str, str], tuple[str, int]] = {}

    async def record(self, type: str, reason: str, message: str, *, field_path: str = "") -> None:
        """Record (or count again) an Event; failures to write are logged, never raised."""
        meta = self._pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        now = format_time(self._clock())
        key = (type, reason, message, field_path)
        seen = self._seen.get(key)
        try:
            if seen is not None:
                name, count = seen
                await self._client.patch(
                    "v1",
                    "Event",
                    name,
                    {"count": count + 1, "lastTimestamp": now},
                    namespace=namespace,
                    field_manager="kubelet",
                )
                self._seen[key] = (name, count + 1)
                return
            involved: Obj = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            }
            if field_path:
                involved["fieldPath"] = field_path
            name = f"{meta.get('name', 'pod')}.{secrets.token_hex(8)}"
            await self._client.create(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "source": {"component": "kubelet", "host": self._node},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "type": type,
                    "reportingComponent": "kubelet",
                    "reportingInstance": self._node,
                }
            )
            if len(self._seen) < 1000:
                self._seen[key] = (name, 1)
        except StatusError as error:
            log.debug("kubelet_event_not_recorded", reason=reason, error=error.message)
