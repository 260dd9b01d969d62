"""Engine layer: the manager runs informers, controllers, leader election and the HTTP servers.

Informers start on every replica, so a standby's cache is warm when it takes over; controllers
start only on the leader, once every cache has synced. ``/readyz`` turns ready when the caches
have synced, and says not ready while any informer's list or watch is failing (the API server is
unreachable, or answers errors) until it has listed or watched again. :meth:`Manager.stop`
(SIGTERM or SIGINT under :meth:`Manager.run_until_signalled`) stops taking new keys, lets
in-flight reconciles finish within ``graceful_shutdown`` seconds, then cancels the rest and
releases the Lease.

Runnables (:meth:`Manager.add_runnable`) that need the lease start on the leader with the
controllers; those that do not (a webhook server) start on every replica, before the manager
counts as started, and stop after the controllers have drained.
"""

from __future__ import annotations

import signal
from datetime import timedelta

import anyio
import anyio.abc
import structlog
from aiohttp import web

from kaito.engine._client import Client
from kaito.engine._clock import Clock, MonotonicClock
from kaito.engine._controller import Controller, Reconciler
from kaito.engine._events import EventRecorder
from kaito.engine._http import build_metrics_app, build_probe_app, serve
from kaito.engine._informer import Informer, InformerFactory
from kaito.engine._leader import LeaderElectionConfig, LeaderElectionLost, LeaderElector
from kaito.engine._metrics import EngineMetrics
from kaito.engine._ratelimit import RateLimiter
from kaito.engine._resources import Resource
from kaito.engine._runnable import Runnable, needs_leader_election

__all__ = ("Manager",)

log = structlog.get_logger("kaito.engine._manager")
Address = tuple[str, int]


class Manager:
    """Owns the shared informers, the controllers and everything that runs them.

    Build it, add controllers (and their watches), then ``await manager.run()``. Ports of 0
    pick free ones; the bound ports are in :attr:`probe_port` and :attr:`metrics_port` once
    :attr:`started` is set.
    """

    def __init__(
        self,
        client: Client,
        *,
        name: str = "kaito",
        leader_election: LeaderElectionConfig | None = None,
        probe_address: Address | None = None,
        metrics_address: Address | None = None,
        resync_period: float | None = None,
        graceful_shutdown: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.clock = clock or MonotonicClock()
        self.informers = InformerFactory(client, resync_period=resync_period, clock=self.clock)
        self.metrics = EngineMetrics(clock=self.clock)
        self.registry = self.metrics.registry
        self.controllers: list[Controller] = []
        #: Runnables by name, with whether each needs the lease.
        self.runnables: dict[str, tuple[Runnable, bool]] = {}
        self.elector = (
            LeaderElector(client, leader_election, self.clock) if leader_election else None
        )
        if self.elector is not None:
            elector = self.elector
            self.metrics.register_leader(elector.config.name, lambda: elector.is_leader)
        self.probe_address = probe_address
        self.metrics_address = metrics_address
        self.graceful_shutdown = graceful_shutdown
        self.probe_port: int | None = None
        self.metrics_port: int | None = None
        self.started = anyio.Event()
        self.leading = anyio.Event()
        self._stop = anyio.Event()
        self._running = False

    # -- building -------------------------------------------------------------------------

    def informer(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> Informer:
        """Return the shared informer for ``resource`` (and scope)."""
        return self.informers.informer(resource, namespace=namespace, label_selector=label_selector)

    def add_controller(
        self,
        name: str,
        reconcile: Reconciler,
        *,
        workers: int = 1,
        reconcile_timeout: float | timedelta | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> Controller:
        """Create a controller run by this manager; wire its inputs with ``Controller.watch``."""
        if any(c.name == name for c in self.controllers):
            raise ValueError(f"controller name={name!r} is already used; names must be unique")
        controller = Controller(
            name,
            reconcile,
            workers=workers,
            reconcile_timeout=reconcile_timeout,
            rate_limiter=rate_limiter,
            clock=self.clock,
        )
        self.controllers.append(controller)
        self.metrics.register_controller(controller)
        return controller

    def add_runnable(
        self, name: str, runnable: Runnable, *, leader_election: bool | None = None
    ) -> None:
        """Run ``runnable`` with the manager: on the leader only, or on every replica.

        ``leader_election`` overrides what the runnable says (``needs_leader_election()``; a
        runnable that says nothing needs the lease, as in controller-runtime).
        """
        if self._running:
            raise RuntimeError(f"runnable {name!r} added to a running manager; add it before run")
        if name in self.runnables:
            raise ValueError(f"runnable name={name!r} is already used; names must be unique")
        needs = needs_leader_election(runnable) if leader_election is None else leader_election
        self.runnables[name] = (runnable, needs)

    def event_recorder(self, component: str | None = None) -> EventRecorder:
        """Return a recorder of core/v1 Events reported as ``component`` (the manager's name)."""
        return EventRecorder(self.client, component or self.name)

    # -- state ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Return whether every informer has synced and none is failing (``/readyz``)."""
        return self._running and self.informers.has_synced and not self.informers.failures

    def not_ready_reason(self) -> str:
        """Return why :attr:`ready` is false, as ``/readyz`` says it."""
        if not self._running:
            return "the manager is not running"
        if not self.informers.has_synced:
            return "informer caches have not synced"
        failing = ", ".join(f"{r} ({why})" for r, why in sorted(self.informers.failures.items()))
        return f"list/watch failing for {failing}" if failing else "ready"

    def stop(self) -> None:
        """Ask :meth:`run` to shut down gracefully."""
        self._stop.set()

    # -- running --------------------------------------------------------------------------

    async def run_until_signalled(self) -> None:
        """Run, stopping gracefully on SIGTERM or SIGINT."""
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("manager_signal_received", signal=signal.Signals(signum).name)
                        self.stop()
                        return

            tg.start_soon(watch_signals)
            await self.run()
            tg.cancel_scope.cancel()

    async def run(self) -> None:
        """Run until :meth:`stop` (graceful) or cancellation.

        Raises:
            LeaderElectionLost: the Lease could not be renewed; controllers were stopped.
                Exit the process, as controller-runtime does, and let it be restarted.
        """
        runners: list[web.AppRunner] = []
        lost: LeaderElectionLost | None = None
        self._running = True
        try:
            if self.probe_address is not None:
                app = build_probe_app(
                    lambda: self.ready, lambda: self._running, self.not_ready_reason
                )
                runner, self.probe_port = await serve(app, *self.probe_address)
                runners.append(runner)
            if self.metrics_address is not None:
                runner, self.metrics_port = await serve(
                    build_metrics_app(self.registry), *self.metrics_address
                )
                runners.append(runner)
            async with anyio.create_task_group() as tg:
                for name, (runnable, needs_lease) in self.runnables.items():
                    if not needs_lease:
                        await tg.start(_run_runnable, name, runnable, name=f"runnable {name}")
                tg.start_soon(self.informers.run, name="informers")

                async def lead_or_lose() -> None:
                    nonlocal lost
                    try:
                        await self._lead_when_elected()
                    except LeaderElectionLost as err:
                        lost = err
                    tg.cancel_scope.cancel()

                tg.start_soon(lead_or_lose, name="leader election")
                self.started.set()
                log.info(
                    "manager_started",
                    controllers=[c.name for c in self.controllers],
                    runnables=list(self.runnables),
                    probe_port=self.probe_port,
                    metrics_port=self.metrics_port,
                )
                await self._stop.wait()
                await self._drain()
                tg.cancel_scope.cancel()
        finally:
            self._running = False
            with anyio.CancelScope(shield=True):
                for runner in runners:
                    await runner.cleanup()
            log.info("manager_stopped")
        if lost is not None:
            raise lost

    async def _lead_when_elected(self) -> None:
        if self.elector is None:
            await self._run_controllers()
        else:
            await self.elector.run(self._run_controllers)

    async def _run_controllers(self) -> None:
        self.leading.set()
        await self.informers.wait_synced()
        log.info("caches_synced")
        async with anyio.create_task_group() as tg:
            for name, (runnable, needs_lease) in self.runnables.items():
                if needs_lease:
                    await tg.start(_run_runnable, name, runnable, name=f"runnable {name}")
            for controller in self.controllers:
                tg.start_soon(controller.run, name=f"controller {controller.name}")

    async def _drain(self) -> None:
        log.info("manager_stopping", grace=self.graceful_shutdown)
        with self.clock.move_on_after(self.graceful_shutdown) as scope:
            async with anyio.create_task_group() as tg:
                for controller in self.controllers:
                    tg.start_soon(controller.shutdown)
        if scope.cancelled_caught:
            log.warning("manager_shutdown_deadline_exceeded", grace=self.graceful_shutdown)


async def _run_runnable(
    name: str,
    runnable: Runnable,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run one runnable until cancelled, logging its start and its stop."""
    try:
        await runnable.run(task_status=_Started(name, task_status))
    finally:
        log.info("runnable_stopped", runnable=name)


class _Started(anyio.abc.TaskStatus[object]):
    """Passes a runnable's ``started()`` on to the manager, logging it."""

    def __init__(self, name: str, outer: anyio.abc.TaskStatus[None]) -> None:
        self._name = name
        self._outer = outer

    def started(self, value: object = None) -> None:
        log.info("runnable_started", runnable=self._name)
        self._outer.started()
