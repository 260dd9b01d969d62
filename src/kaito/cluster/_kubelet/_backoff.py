"""Per-key exponential back-off as the kubelet keeps it for crashing containers and image pulls.

A key's delay starts at ``initial`` (10 s), doubles on each retry up to ``cap`` (5 min), and
starts over when the key has not been retried for twice the cap. A container that finished at
``t`` is "in back-off" while ``now - t`` is shorter than its current delay.
"""

from __future__ import annotations

from collections.abc import Hashable

import attrs

__all__ = ("BackOff",)


@attrs.define
class _Entry:
    delay: float
    last_update: float


class BackOff:
    """Kubelet-style back-off keyed by anything hashable (times on a :class:`KubeletClock`)."""

    def __init__(self, *, initial: float = 10.0, cap: float = 300.0) -> None:
        self.initial = initial
        self.cap = cap
        self._entries: dict[Hashable, _Entry] = {}

    def delay(self, key: Hashable) -> float:
        """The key's current delay (0 for a key never retried)."""
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def remaining(self, key: Hashable, since: float, now: float) -> float:
        """Seconds left of the back-off that started at ``since`` (0 when none is due)."""
        entry = self._entries.get(key)
        if entry is None or since - entry.last_update > 2 * self.cap:
            return 0.0
        return max(0.0, entry.delay - (now - since))

    def next(self, key: Hashable, now: float) -> float:
        """Record a retry at ``now``; return the delay that now applies to the key."""
        entry = self._entries.get(key)
        if entry is None or now - entry.last_update > 2 * self.cap:
            entry = self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.cap)
            entry.last_update = now
        return entry.delay

    def forget(self, key: Hashable) -> None:
        """Drop the key's history (its pod is gone)."""
        self._entries.pop(key, None)
