"""Engine layer: leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

A candidate reads the Lease; it takes it if nobody holds it, if it is its own, or if the record
has not changed for ``lease_duration`` as measured on the candidate's own clock (so clock skew
between replicas does not matter). Writes use the Lease's resourceVersion, so two candidates
can never both win. The leader renews every ``retry_period``; if it cannot renew within
``renew_deadline`` it stops leading. On a clean stop it releases the Lease so a standby takes
over at its next retry instead of waiting for expiry.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import attrs
import structlog

from kaito.engine._client import ObjectClient
from kaito.engine._clock import Clock, MonotonicClock
from kaito.engine._errors import ApiError
from kaito.engine._keys import ObjectKey
from kaito.engine._resources import LEASES

__all__ = ("LeaderElectionConfig", "LeaderElectionLost", "LeaderElector", "default_identity")

JSON = dict[str, Any]
log = structlog.get_logger("kaito.engine._leader")


def default_identity() -> str:
    """Return ``<hostname>_<random>``, unique per process like controller-runtime's."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElectionLost(Exception):
    """Raised by :meth:`LeaderElector.run` when the leader could not renew its Lease in time."""


@attrs.frozen
class LeaderElectionConfig:
    """Where the Lease lives and the timings (client-go's defaults: 15 s, 10 s, 2 s)."""

    name: str
    namespace: str
    identity: str = attrs.field(factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __attrs_post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                f"lease_duration={self.lease_duration}, renew_deadline={self.renew_deadline}, "
                f"retry_period={self.retry_period} are not valid; need "
                "lease_duration > renew_deadline > retry_period > 0"
            )


class LeaderElector:
    """Campaigns for a Lease and runs a callable only while holding it."""

    def __init__(
        self, client: ObjectClient, config: LeaderElectionConfig, clock: Clock | None = None
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock or MonotonicClock()
        self.key = ObjectKey(config.namespace, config.name)
        self._observed: JSON | None = None
        self._observed_at = 0.0
        self._leader = False
        self._log = log.bind(lease=f"{config.namespace}/{config.name}", identity=config.identity)

    @property
    def is_leader(self) -> bool:
        """Return whether this candidate currently holds the Lease."""
        return self._leader

    @property
    def observed_holder(self) -> str:
        """Return the holder named by the last Lease record seen (``""`` if none)."""
        spec = (self._observed or {}).get("spec") or {}
        return str(spec.get("holderIdentity") or "")

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Acquire the Lease, then run ``lead()`` while renewing it.

        Returns when ``lead`` returns (the Lease is released). Raises
        :class:`LeaderElectionLost` if renewal fails for ``renew_deadline``; ``lead`` is
        cancelled first. On cancellation the Lease is released if ``release_on_cancel``.
        """
        await self._acquire()
        lost = False
        try:
            async with anyio.create_task_group() as tg:

                async def lead_then_stop() -> None:
                    await lead()
                    tg.cancel_scope.cancel()

                tg.start_soon(lead_then_stop, name="leader work")
                await self._renew_until_lost()
                lost = True
                tg.cancel_scope.cancel()
        finally:
            was_leader = self._leader
            self._leader = False
            if was_leader and not lost and self.config.release_on_cancel:
                with (
                    anyio.CancelScope(shield=True),
                    self.clock.move_on_after(self.config.retry_period),
                ):
                    await self._release()
        if lost:
            self._log.error("leader_election_lost")
            raise LeaderElectionLost(f"lost the lease {self.key}")

    async def _acquire(self) -> None:
        self._log.info("leader_election_campaigning")
        while not await self._try_acquire_or_renew():
            await self.clock.sleep(self.config.retry_period)
        self._log.info("leader_election_acquired")

    async def _renew_until_lost(self) -> None:
        cfg = self.config
        while True:
            await self.clock.sleep(cfg.retry_period)
            with self.clock.move_on_after(cfg.renew_deadline) as scope:
                while not await self._try_acquire_or_renew():
                    await self.clock.sleep(cfg.retry_period)
            if scope.cancelled_caught:
                return

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        now = self.clock.now()
        try:
            lease = await self.client.get(LEASES, self.key)
        except ApiError as err:
            if not err.not_found:
                self._log.warning("lease_get_failed", status=err.status, reason=err.reason)
                return False
            return await self._create()
        except Exception as exc:
            self._log.warning("lease_get_failed", error=repr(exc))
            return False
        spec = lease.get("spec") or {}
        if self._observed is None or (self._observed.get("spec") or {}) != spec:
            self._observed = lease
            self._observed_at = now
        holder = spec.get("holderIdentity") or ""
        if holder and holder != cfg.identity and self._observed_at + cfg.lease_duration > now:
            return False
        stamp = _micro_time()
        new_spec = dict(spec)
        new_spec.update(
            holderIdentity=cfg.identity,
            leaseDurationSeconds=int(cfg.lease_duration),
            renewTime=stamp,
        )
        if holder != cfg.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease = {**lease, "spec": new_spec}
        try:
            updated = await self.client.replace(LEASES, lease)
        except Exception as exc:
            self._log.debug("lease_update_failed", error=repr(exc))
            return False
        self._observed = updated
        self._observed_at = now
        self._leader = True
        return True

    async def _create(self) -> bool:
        cfg = self.config
        stamp = _micro_time()
        lease: JSON = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {
                "holderIdentity": cfg.identity,
                "leaseDurationSeconds": int(cfg.lease_duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            created = await self.client.create(LEASES, lease, namespace=cfg.namespace)
        except Exception as exc:
            self._log.debug("lease_create_failed", error=repr(exc))
            return False
        self._observed = created
        self._observed_at = self.clock.now()
        self._leader = True
        return True

    async def _release(self) -> None:
        if self._observed is None:
            return
        spec = dict(self._observed.get("spec") or {})
        if spec.get("holderIdentity") != self.config.identity:
            return
        stamp = _micro_time()
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=stamp, acquireTime=stamp)
        try:
            await self.client.replace(LEASES, {**self._observed, "spec": spec})
            self._log.info("leader_election_released")
        except Exception as exc:
            self._log.warning("lease_release_failed", error=repr(exc))
