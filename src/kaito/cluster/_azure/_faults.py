"""Faults the AKS emulator can inject: per instance type, per workspace, for a number of requests
or for a time, lifted by hand or by themselves."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Generic, Literal, TypeVar

import attrs

__all__ = ("AzureFault", "AzureFaults", "Fault", "FaultKind", "FaultTable")

K = TypeVar("K", bound=str)

#: ``quota`` and ``sku_unavailable`` refuse the PUT (ARM's preflight validation);
#: ``capacity`` and ``pool_failed`` fail the create operation (the pool ends ``Failed``);
#: ``throttle`` answers 429 with ``Retry-After``; ``conflict`` answers 409 (another operation on
#: the cluster is in progress); ``never_join`` lets the pool succeed but no Node ever registers;
#: ``no_device_plugin`` lets the Node become Ready without ever advertising GPUs.
FaultKind = Literal[
    "quota",
    "sku_unavailable",
    "capacity",
    "pool_failed",
    "throttle",
    "conflict",
    "never_join",
    "no_device_plugin",
]


@attrs.define(eq=False)
class Fault(Generic[K]):
    """One injected fault. ``times`` (None: unlimited) and ``until`` (monotonic seconds) bound it;
    :meth:`lift` ends it. ``hits`` counts the requests it changed."""

    kind: K
    instance_type: str | None = None
    workspace: str | None = None
    #: Only for ``throttle``: which requests (``read``, ``write`` or both when None).
    verb: Literal["read", "write"] | None = None
    times: int | None = None
    until: float | None = None
    retry_after: int = 1
    message: str = ""
    hits: int = 0
    lifted: bool = False

    def lift(self) -> None:
        """End the fault now."""
        self.lifted = True

    def active(self, now: float) -> bool:
        """Whether the fault still applies."""
        if self.lifted or (self.times is not None and self.hits >= self.times):
            return False
        return self.until is None or now < self.until


class FaultTable(Generic[K]):
    """A fault table; the first active matching fault applies."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._faults: list[Fault[K]] = []
        self._clock = clock

    def add(
        self,
        kind: K,
        *,
        instance_type: str | None = None,
        workspace: str | None = None,
        verb: Literal["read", "write"] | None = None,
        times: int | None = None,
        duration: float | None = None,
        retry_after: int = 1,
        message: str = "",
    ) -> Fault[K]:
        """Inject a fault; ``duration`` seconds from now (or ``times`` requests) bound it."""
        fault = Fault(
            kind,
            instance_type=instance_type,
            workspace=workspace,
            verb=verb,
            times=times,
            until=None if duration is None else self._clock() + duration,
            retry_after=retry_after,
            message=message,
        )
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Lift every fault."""
        for fault in self._faults:
            fault.lift()
        self._faults.clear()

    def match(
        self,
        kinds: Iterable[K],
        *,
        instance_type: str = "",
        workspace: str = "",
        verb: str = "",
    ) -> Fault[K] | None:
        """The first active fault of ``kinds`` for this request, counted as a hit."""
        wanted = set(kinds)
        now = self._clock()
        for fault in self._faults:
            if fault.kind not in wanted or not fault.active(now):
                continue
            if fault.instance_type is not None and fault.instance_type != instance_type:
                continue
            if fault.workspace is not None and fault.workspace != workspace:
                continue
            if fault.verb is not None and fault.verb != verb:
                continue
            fault.hits += 1
            return fault
        return None


#: The AKS emulator's faults.
AzureFault = Fault[FaultKind]
AzureFaults = FaultTable[FaultKind]
