"""Helpers for local-kubelet tests: Pod builders, waiting on the Pod's status, a stepped clock."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs

from kaito.cluster import Cluster, LocalKubelet, StatusError
from kaito.cluster._json import Obj
from kaito.engine import FakeClock
from tests.cluster._helpers import eventually

NS = "t"

#: Start ``sleep 1000`` in the background and say ``up`` once it runs (not merely forked).
SLEEP_THEN_UP = (
    'sleep 1000 & until [ "$(cat /proc/$!/comm 2>/dev/null)" = sleep ]; do :; done; echo up'
)


class StepClock(FakeClock):
    """A fake clock that tells waiters when the kubelet starts sleeping on it."""

    def __init__(self) -> None:
        super().__init__()
        self._slept = anyio.Event()
        self.auto_advance = False

    async def sleep(self, seconds: float) -> None:
        if self.auto_advance:
            await anyio.lowlevel.checkpoint()
            return
        slept, self._slept = self._slept, anyio.Event()
        slept.set()
        await super().sleep(seconds)

    def release(self) -> None:
        """From now on every sleep ends at once, and the pending ones end now (teardown)."""
        self.auto_advance = True
        while self.next_deadline is not None:
            self.advance_to_next()

    async def advance_when_due(self, seconds: float, *, within: float = 20.0) -> None:
        """Wait until something sleeps until at most ``seconds`` from now, then advance."""
        with anyio.fail_after(within):
            while True:
                deadline = self.next_deadline
                if deadline is not None and deadline <= self.now() + seconds + 1e-9:
                    break
                await self._slept.wait()
        self.advance(seconds)


@attrs.frozen
class Local:
    cluster: Cluster
    kubelet: LocalKubelet
    clock: StepClock
    tmp: Path

    async def create(self, obj: Obj) -> Obj:
        return await self.cluster.client.create(obj, namespace=NS)

    async def pod(self, name: str) -> Obj:
        return await self.cluster.client.get("v1", "Pod", name, NS)

    async def wait(self, name: str, check: Callable[[Obj], bool], *, within: float = 20.0) -> Obj:
        """The Pod once ``check(pod)`` holds (re-checked after every store commit)."""
        seen: dict[str, Obj] = {}

        async def holds() -> bool:
            try:
                seen["pod"] = await self.pod(name)
            except StatusError:
                return False
            return check(seen["pod"])

        try:
            await eventually(self.cluster, holds, within=within)
        except TimeoutError as error:
            raise AssertionError(
                f"pod {name} never matched; last seen: {seen.get('pod')}"
            ) from error
        return seen["pod"]

    async def wait_service_account(self, name: str) -> None:
        """Wait for the ServiceAccount (the ``default`` one is made by a controller)."""

        async def present() -> bool:
            try:
                await self.cluster.client.get("v1", "ServiceAccount", name, NS)
            except StatusError:
                return False
            return True

        await eventually(self.cluster, present)

    async def events(self, name: str) -> list[Obj]:
        events = await self.cluster.client.list("v1", "Event", NS)
        return [e for e in events if e["involvedObject"].get("name") == name]

    async def wait_event(self, name: str, reason: str, *, contains: str = "") -> Obj:
        found: dict[str, Obj] = {}

        async def has() -> bool:
            for event in await self.events(name):
                if event["reason"] == reason and contains in event["message"]:
                    found["event"] = event
                    return True
            return False

        await eventually(self.cluster, has, within=20)
        return found["event"]

    async def logs(self, name: str, **options: Any) -> bytes:
        from kaito.cluster import LogOptions

        chunks = [c async for c in self.kubelet.read_logs(NS, name, LogOptions(**options))]
        return b"".join(chunks)

    async def follow_until(
        self, name: str, marker: bytes, *, container: str | None = None
    ) -> bytes:
        """Follow the container's log until ``marker`` was written (empty: until it runs)."""
        from kaito.cluster import LogOptions

        def started(pod: Obj) -> bool:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            return any("running" in s.get("state", {}) for s in statuses)

        with contextlib.suppress(StatusError):
            if await self.pod(name):
                await self.wait(name, started)
        seen = b""
        if not marker:
            return seen
        with anyio.fail_after(20):
            async for chunk in self.kubelet.read_logs(
                NS, name, LogOptions(container=container, follow=True)
            ):
                seen += chunk
                if marker in seen:
                    return seen
        raise AssertionError(f"{name} ended without writing {marker!r}: {seen!r}")

    async def run(self, name: str, command: list[str]) -> tuple[int, bytes, bytes]:
        out = {"stdout": b"", "stderr": b""}
        async with self.kubelet.exec(NS, name, None, command) as session:
            async for stream, data in session.output:
                out[stream] += data
            code = await session.wait()
        return code, out["stdout"], out["stderr"]


def pod(name: str, *containers: Obj, **spec: Any) -> Obj:
    labels = spec.pop("labels", {})
    annotations = spec.pop("annotations", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels, "annotations": annotations},
        "spec": {"containers": list(containers), **spec},
    }


def sh(script: str, *, name: str = "main", image: str = "busybox", **fields: Any) -> Obj:
    """A container running ``sh -c script``."""
    return {"name": name, "image": image, "command": ["sh", "-c", script], **fields}


def status_of(pod: Obj, container: str = "main", *, init: bool = False) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod.get("status") or {}).get(key) or []:
        if status["name"] == container:
            return status
    return {}


def state(pod: Obj, container: str = "main", *, init: bool = False) -> Obj:
    return status_of(pod, container, init=init).get("state") or {}


def condition(pod: Obj, kind: str) -> Obj:
    for item in (pod.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return item
    return {}


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase", ""))


def exists(path: str | Path) -> bool:
    """Whether ``path`` exists (a plain function, for assertions in async tests)."""
    return Path(path).exists()


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] != b"Z"


Check = Callable[[Obj], bool]
AsyncCheck = Callable[[], Awaitable[bool]]
