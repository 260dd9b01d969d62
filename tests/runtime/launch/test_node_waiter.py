"""The leader's wait for the Ray nodes, with the GCS's answers scripted and the clock faked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from kaito_runtime.launch import LaunchError, NodeWaiter, RayNode, RayUnavailableError

pytestmark = pytest.mark.anyio


class Script:
    """Answers the node list from a script; sleeping advances a fake clock."""

    def __init__(self, answers: list[list[str] | str]) -> None:
        self._answers: Iterator[list[str] | str] = iter(answers)
        self.now = 100.0
        self.slept: list[float] = []

    async def list_nodes(self) -> list[RayNode]:
        answer = next(self._answers)
        if isinstance(answer, str):
            raise RayUnavailableError(answer)
        return [RayNode(f"n{i}", ip, alive=True, is_head=i == 0) for i, ip in enumerate(answer)]

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _waiter(script: Script, **kwargs: object) -> NodeWaiter:
    return NodeWaiter(
        expected=3,
        timeout=10.0,
        list_nodes=script.list_nodes,
        poll_interval=2.0,
        clock=script.clock,
        sleep=script.sleep,
        leader_address="ws-0.ws-headless.ns.svc.cluster.local:6379",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_waits_until_every_node_is_alive_and_logs_each_change() -> None:
    script = Script(["the Ray GCS is not reachable: refused", ["10.0.0.1"], ["10.0.0.1"],
                     ["10.0.0.1", "10.0.0.2", "10.0.0.3"]])  # fmt: skip
    with capture_logs() as logs:
        alive = await _waiter(script).wait()
    assert [n.address for n in alive] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert script.slept == [2.0, 2.0, 2.0]
    waiting = [e for e in logs if e["event"] == "ray_cluster_waiting"]
    assert [(e["alive"], e["reason"]) for e in waiting] == [
        (0, "the Ray GCS is not reachable: refused"),
        (1, None),
    ]
    assert [e["seconds"] for e in logs if e["event"] == "ray_cluster_ready"] == [6.0]


async def test_gives_up_at_the_timeout_naming_who_joined() -> None:
    script = Script([["10.0.0.1", "10.0.0.2"]] * 10)
    with pytest.raises(LaunchError) as err:
        await _waiter(script).wait()
    assert str(err.value) == (
        "2 of 3 Ray nodes joined within 10s (joined: 10.0.0.1, 10.0.0.2); check the worker "
        "pods' logs and that they reach ws-0.ws-headless.ns.svc.cluster.local:6379 (the "
        "headless Service)"
    )
    assert script.now == 110.0


async def test_stops_waiting_when_the_head_exits() -> None:
    script = Script([["10.0.0.1"]] * 3)
    with pytest.raises(LaunchError, match="ray start --head exited with status 1 before"):
        await _waiter(script, head_exited=lambda: 1).wait()
    assert script.slept == []
