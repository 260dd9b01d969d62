from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
import structlog
from prometheus_client import generate_latest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from kaito.cluster import Cluster
from kaito.engine import (
    Controller,
    EngineMetrics,
    ExponentialFailureRateLimiter,
    FakeClock,
    Informer,
    ObjectKey,
    Result,
    TerminalError,
    generation_changed,
    map_by_label,
    map_to_controller_owner,
)
from tests.engine.clusterkit import (
    API_VERSION,
    CONFIGMAPS,
    NS,
    WIDGETS,
    Changes,
    StepClock,
    engine_client,
    widget,
)
from tests.engine.support import settle

pytestmark = pytest.mark.anyio
A = ObjectKey("default", "a")


async def test_success_forgets_and_exception_requeues_with_backoff_and_logs_the_key() -> None:
    clock = FakeClock()
    calls: list[tuple[str, float]] = []
    failures_left = 3

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal failures_left
        calls.append((str(key), clock.now()))
        if failures_left:
            failures_left -= 1
            raise RuntimeError("flaky backend")
        return Result()

    ctrl = Controller(
        "widgets",
        reconcile,
        clock=clock,
        rate_limiter=ExponentialFailureRateLimiter(base=1.0, cap=100.0),
    )
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctrl.run)
            ctrl.add(A)
            await settle(clock, lambda: ctrl.stats.totals["success"] == 1)
            tg.cancel_scope.cancel()
    assert [t for _, t in calls] == [0.0, 1.0, 3.0, 7.0]  # 1 s, 2 s, 4 s backoff
    assert ctrl.queue.num_requeues(A) == 0  # forgotten after the success
    failed = [e for e in logs if e["event"] == "reconcile_failed"]
    assert len(failed) == 3
    assert failed[0]["key"] == "default/a"
    assert failed[0]["controller"] == "widgets"
    assert failed[0]["error"] == "flaky backend"
    assert len({e["reconcile_id"] for e in failed}) == 3
    assert ctrl.stats.totals == {"success": 1, "error": 3, "requeue": 0, "requeue_after": 0}


async def test_terminal_error_is_not_retried() -> None:
    clock = FakeClock()
    calls = 0

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal calls
        calls += 1
        raise TerminalError("spec.size='huge' is not supported; use small or large")

    ctrl = Controller("w", reconcile, clock=clock)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctrl.run)
            ctrl.add(A)
            await anyio.wait_all_tasks_blocked()
            assert clock.next_deadline is None  # nothing scheduled
            tg.cancel_scope.cancel()
    assert calls == 1
    assert ctrl.stats.terminal_errors == 1
    assert [e["event"] for e in logs if e.get("key") == "default/a"] == [
        "reconcile_failed_terminal"
    ]


async def test_requeue_after_polls_and_requeue_flag_backs_off() -> None:
    clock = FakeClock()
    seen: list[float] = []

    async def reconcile(key: ObjectKey) -> Result:
        seen.append(clock.now())
        if len(seen) == 1:
            return Result(requeue_after=30)
        if len(seen) == 2:
            return Result(requeue=True)
        return Result()

    ctrl = Controller(
        "w", reconcile, clock=clock, rate_limiter=ExponentialFailureRateLimiter(base=5.0)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(ctrl.run)
        ctrl.add(A)
        await settle(clock, lambda: len(seen) == 3)
        tg.cancel_scope.cancel()
    assert seen == [0.0, 30.0, 35.0]
    assert ctrl.stats.totals["requeue_after"] == 1
    assert ctrl.stats.totals["requeue"] == 1


async def test_hanging_reconcile_is_cut_off_by_its_timeout_and_retried() -> None:
    clock = FakeClock()
    attempts = 0

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await anyio.sleep_forever()
        return Result()

    ctrl = Controller(
        "w",
        reconcile,
        clock=clock,
        reconcile_timeout=10,
        rate_limiter=ExponentialFailureRateLimiter(base=1.0),
    )
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctrl.run)
            ctrl.add(A)
            await settle(clock, lambda: ctrl.stats.totals["success"] == 1)
            tg.cancel_scope.cancel()
    assert attempts == 2
    assert clock.now() == 11.0  # 10 s timeout, then 1 s backoff
    assert any(e["event"] == "reconcile_timed_out" and e["key"] == "default/a" for e in logs)


async def test_workers_never_share_a_key_and_re_adds_run_once_more() -> None:
    clock = FakeClock()
    running: set[ObjectKey] = set()
    overlaps: list[ObjectKey] = []
    runs: dict[ObjectKey, int] = {}
    gate = anyio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        if key in running:
            overlaps.append(key)
        running.add(key)
        runs[key] = runs.get(key, 0) + 1
        await gate.wait()
        running.discard(key)
        return Result()

    ctrl = Controller("w", reconcile, workers=4, clock=clock)
    keys = [ObjectKey("default", n) for n in "xy"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(ctrl.run)
        for key in keys:
            ctrl.add(key)
        await anyio.wait_all_tasks_blocked()
        for _ in range(5):
            for key in keys:
                ctrl.add(key)  # in flight: coalesce into one more pass each
        await anyio.wait_all_tasks_blocked()
        assert ctrl.stats.active_workers == 2
        gate.set()
        await settle(clock, lambda: sum(runs.values()) == 4 and not running)
        tg.cancel_scope.cancel()
    assert overlaps == []
    assert runs == {keys[0]: 2, keys[1]: 2}


async def test_owned_objects_map_to_the_owner_key_by_reference_and_by_label(
    cluster: Cluster,
) -> None:
    owner = await cluster.client.create(widget("owner", NS))
    reconciled: list[ObjectKey] = []
    changed = anyio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        reconciled.append(key)
        changed.set()
        return Result()

    async def until(check: Callable[[], bool]) -> None:
        nonlocal changed
        with anyio.fail_after(10):
            while not check():
                changed = anyio.Event()
                await changed.wait()

    clock = StepClock()
    seen = Changes()
    async with engine_client(cluster) as client, anyio.create_task_group() as tg:
        ctrl = Controller("widgets", reconcile, clock=clock)
        widgets = Informer(client, WIDGETS, namespace=NS, clock=clock)
        configmaps = Informer(client, CONFIGMAPS, namespace=NS, clock=clock)
        widgets.add_handler(seen)
        ctrl.watch(widgets, predicate=generation_changed)
        ctrl.watch(configmaps, map_to_controller_owner("Widget", "example.com"))
        ctrl.watch(configmaps, map_by_label("example.com/widget"))
        tg.start_soon(widgets.run)
        tg.start_soon(configmaps.run)
        tg.start_soon(ctrl.run)
        await until(lambda: reconciled == [ObjectKey(NS, "owner")])
        ref = {
            "apiVersion": API_VERSION,
            "kind": "Widget",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
        for name, meta in (
            ("owned", {"ownerReferences": [ref]}),
            ("labelled", {"labels": {"example.com/widget": "other"}}),
            ("stranger", {}),
        ):
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}}
            await cluster.client.create(body, namespace=NS)
        await until(lambda: ObjectKey(NS, "other") in reconciled and len(reconciled) >= 3)
        # A status-only write of the owner is filtered out by generation_changed.
        before = len(reconciled)
        await client.patch_status(WIDGETS, ObjectKey(NS, "owner"), {"ready": True})
        await seen.until(lambda: ("update", f"{NS}/owner") in seen.kinds())
        await anyio.wait_all_tasks_blocked()
        assert len(reconciled) == before
        tg.cancel_scope.cancel()
    assert set(reconciled) == {ObjectKey(NS, "owner"), ObjectKey(NS, "other")}


async def test_metrics_use_controller_runtime_names() -> None:
    clock = FakeClock()

    async def reconcile(key: ObjectKey) -> Result:
        if key.name == "bad":
            raise ValueError("nope")
        clock.advance(0.2)
        return Result()

    ctrl = Controller("widgets", reconcile, clock=clock, workers=2)
    metrics = EngineMetrics(clock=clock)
    metrics.register_controller(ctrl)
    metrics.register_leader("kaito-lock", lambda: True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(ctrl.run)
        ctrl.add(A)
        ctrl.add(ObjectKey("default", "bad"))
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    text = generate_latest(metrics.registry).decode()
    for line in (
        'controller_runtime_reconcile_total{controller="widgets",result="success"} 1.0',
        'controller_runtime_reconcile_total{controller="widgets",result="error"} 1.0',
        'controller_runtime_reconcile_errors_total{controller="widgets"} 1.0',
        'controller_runtime_reconcile_time_seconds_bucket{controller="widgets",le="0.25"} 2.0',
        'controller_runtime_max_concurrent_reconciles{controller="widgets"} 2.0',
        'workqueue_adds_total{controller="widgets",name="widgets"} 2.0',
        'workqueue_retries_total{controller="widgets",name="widgets"} 1.0',
        'workqueue_depth{controller="widgets",name="widgets"} 0.0',
        'workqueue_longest_running_processor_seconds{controller="widgets",name="widgets"} 0.0',
        'workqueue_unfinished_work_seconds{controller="widgets",name="widgets"} 0.0',
        'leader_election_master_status{name="kaito-lock"} 1.0',
    ):
        assert line in text, line
    assert "workqueue_queue_duration_seconds_bucket" in text
    assert "workqueue_work_duration_seconds_count" in text


async def test_reconcile_logs_carry_controller_key_and_reconcile_id() -> None:
    clock = FakeClock()
    inner_log = structlog.get_logger("test")

    async def reconcile(key: ObjectKey) -> Result:
        inner_log.info("nodes_provisioned", count=2)
        return Result()

    ctrl = Controller("widgets", reconcile, clock=clock)
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctrl.run)
            ctrl.add(A)
            ctrl.add(ObjectKey("default", "b"))
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    lines = [e for e in logs if e["event"] == "nodes_provisioned"]
    assert [(e["controller"], e["key"]) for e in lines] == [
        ("widgets", "default/a"),
        ("widgets", "default/b"),
    ]
    assert lines[0]["reconcile_id"] != lines[1]["reconcile_id"]


def test_controller_needs_a_worker() -> None:
    async def reconcile(key: ObjectKey) -> None:
        return None

    with pytest.raises(ValueError, match="workers=0"):
        Controller("w", reconcile, workers=0)
