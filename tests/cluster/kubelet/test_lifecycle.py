"""Containers run for real: exit codes, reasons and termination messages, restarts per
restartPolicy with the kubelet's crash-loop back-off, init containers in order, graceful deletion."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from kaito.cluster import LocalKubelet, start_cluster
from tests.cluster.kubelet._helpers import (
    SLEEP_THEN_UP,
    Local,
    StepClock,
    alive,
    comm,
    condition,
    phase,
    pod,
    sh,
    state,
    status_of,
)

pytestmark = pytest.mark.anyio


async def test_a_failing_command_reports_error_exit_code_and_termination_message(
    local: Local,
) -> None:
    await local.create(
        pod(
            "fails",
            sh("echo starting; echo 'config is broken' > /dev/termination-log; exit 3"),
            restartPolicy="Never",
        )
    )
    done = await local.wait("fails", lambda p: phase(p) == "Failed")
    terminated = state(done)["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert terminated["message"] == "config is broken\n"
    assert terminated["containerID"].startswith("kaito://")
    assert condition(done, "Ready") == {
        **condition(done, "Ready"),
        "status": "False",
        "reason": "PodFailed",
    }
    assert condition(done, "PodScheduled")["status"] == "True"
    assert await local.logs("fails") == b"starting\n"


async def test_fallback_to_logs_on_error_takes_the_end_of_the_log(local: Local) -> None:
    script = "for i in $(seq 1 100); do echo line $i; done; exit 1"
    await local.create(
        pod(
            "noisy",
            sh(script, terminationMessagePolicy="FallbackToLogsOnError"),
            restartPolicy="Never",
        )
    )
    done = await local.wait("noisy", lambda p: phase(p) == "Failed")
    message = state(done)["terminated"]["message"]
    lines = message.splitlines()
    assert len(lines) == 80
    assert lines[0] == "line 21"
    assert lines[-1] == "line 100"


async def test_success_with_restart_policy_on_failure_completes_the_pod(local: Local) -> None:
    await local.create(pod("once", sh("echo done"), restartPolicy="OnFailure"))
    done = await local.wait("once", lambda p: phase(p) == "Succeeded")
    assert state(done)["terminated"]["reason"] == "Completed"
    assert condition(done, "Ready")["reason"] == "PodCompleted"
    assert condition(done, "Initialized")["reason"] == "PodCompleted"


async def test_crash_loop_backs_off_10s_then_20s_on_the_kubelet_clock(local: Local) -> None:
    await local.create(pod("crash", sh("echo run; exit 2")))
    # The first exit restarts at once; the second waits out 10 s of back-off.
    crashing = await local.wait(
        "crash", lambda p: (state(p).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    )
    status = status_of(crashing)
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert status["state"]["waiting"]["message"].startswith(
        "back-off 10s restarting failed container=main pod=crash_t("
    )
    assert phase(crashing) == "Running"
    await local.wait_event("crash", "BackOff", contains="Back-off restarting failed container main")
    await local.clock.advance_when_due(10)
    doubled = await local.wait(
        "crash",
        lambda p: (
            status_of(p).get("restartCount") == 2
            and (state(p).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        ),
    )
    assert state(doubled)["waiting"]["message"].startswith("back-off 20s restarting")
    assert await local.logs("crash", previous=True) == b"run\n"


async def test_killing_the_process_restarts_the_container(each_local: Local) -> None:
    local = each_local
    await local.create(pod("victim", sh(SLEEP_THEN_UP + "; wait $!")))
    running = await local.wait("victim", lambda p: "running" in state(p))
    first = status_of(running)["containerID"]
    await local.follow_until("victim", b"up\n")
    killed = [pid for pid in local.kubelet.process_ids() if comm(pid) == "sleep"]
    assert len(killed) == 1
    os.kill(killed[0], signal.SIGKILL)
    restarted = await local.wait(
        "victim", lambda p: status_of(p).get("restartCount") == 1 and "running" in state(p)
    )
    assert status_of(restarted)["lastState"]["terminated"]["exitCode"] == 137
    assert status_of(restarted)["lastState"]["terminated"]["reason"] == "Error"
    assert status_of(restarted)["containerID"] != first


async def test_a_missing_command_is_a_start_error(local: Local) -> None:
    await local.create(
        pod("nocmd", {"name": "main", "image": "busybox", "command": ["no-such-program"]},
            restartPolicy="Never")
    )  # fmt: skip
    done = await local.wait("nocmd", lambda p: phase(p) == "Failed")
    terminated = state(done)["terminated"]
    assert terminated["reason"] == "StartError"
    assert terminated["exitCode"] == 128
    assert 'exec: "no-such-program": executable file not found in $PATH' in terminated["message"]


async def test_init_containers_run_in_order_before_the_containers(local: Local) -> None:
    shared = [{"name": "work", "mountPath": "/work-dir"}]
    await local.create(
        pod(
            "ordered",
            sh("cat /work-dir/order; sleep 1000", volumeMounts=shared),
            initContainers=[
                sh("echo first >> /work-dir/order", name="one", volumeMounts=shared),
                sh("echo second >> /work-dir/order", name="two", volumeMounts=shared),
            ],
            volumes=[{"name": "work", "emptyDir": {}}],
        )
    )
    running = await local.wait("ordered", lambda p: condition(p, "Ready").get("status") == "True")
    assert [
        s["state"]["terminated"]["reason"] for s in running["status"]["initContainerStatuses"]
    ] == [
        "Completed",
        "Completed",
    ]
    assert condition(running, "Initialized")["status"] == "True"
    assert await local.follow_until("ordered", b"second\n") == b"first\nsecond\n"


async def test_a_failing_init_container_fails_the_pod_that_never_restarts(local: Local) -> None:
    await local.create(
        pod(
            "badinit",
            sh("echo never"),
            initContainers=[sh("exit 1", name="setup")],
            restartPolicy="Never",
        )
    )
    done = await local.wait("badinit", lambda p: phase(p) == "Failed")
    assert state(done, "setup", init=True)["terminated"]["exitCode"] == 1
    assert state(done)["waiting"]["reason"] == "PodInitializing"
    assert condition(done, "Initialized") == {
        **condition(done, "Initialized"),
        "status": "False",
        "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [setup]",
    }


async def test_a_failing_init_container_crash_loops_when_the_pod_restarts(local: Local) -> None:
    await local.create(
        pod("loopinit", sh("sleep 1000"), initContainers=[sh("exit 1", name="setup")])
    )
    looping = await local.wait(
        "loopinit",
        lambda p: (
            (state(p, "setup", init=True).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        ),
    )
    assert phase(looping) == "Pending"
    assert state(looping)["waiting"]["reason"] == "PodInitializing"


async def test_deletion_stops_the_process_tree_within_the_grace_period(each_local: Local) -> None:
    local = each_local
    stubborn = f"trap 'echo got TERM' TERM; {SLEEP_THEN_UP}; while :; do wait $!; sleep 1; done"
    await local.create(pod("stubborn", sh(stubborn), terminationGracePeriodSeconds=7))
    await local.follow_until("stubborn", b"up\n")
    pids = local.kubelet.process_ids()
    assert {"sh", "sleep"} <= {comm(pid) for pid in pids}
    await local.cluster.client.delete("v1", "Pod", "stubborn", "t")
    # SIGTERM is trapped, so the processes live until the grace period ends ...
    await local.follow_until("stubborn", b"got TERM\n")
    assert "sh" in {comm(pid) for pid in pids if alive(pid)}
    await local.clock.advance_when_due(7)
    # ... then SIGKILL takes the whole tree, and the Pod's folders go.
    with anyio.fail_after(10):
        await local.kubelet.wait_stopped("t", "stubborn")
    assert not any(alive(pid) for pid in pids)
    assert list((local.tmp / "kubelet" / "pods").iterdir()) == []


async def test_leaving_the_cluster_stops_every_pod(tmp_path: Path) -> None:
    clock = StepClock()
    clock.release()
    async with (
        LocalKubelet(root=tmp_path / "k", clock=clock) as kubelet,
        start_cluster(kubelet=kubelet, system_node=True) as cluster,
    ):
        local = Local(cluster, kubelet, clock, tmp_path)
        await cluster.create_namespace("t")
        for name in ("a", "b"):
            await local.create(pod(name, sh(SLEEP_THEN_UP + "; wait $!")))
        for name in ("a", "b"):
            await local.follow_until(name, b"up\n")
        pids = kubelet.process_ids()
        assert len(pids) >= 8
    assert not any(alive(pid) for pid in pids)
    assert not (tmp_path / "k" / "pods").exists() or not list((tmp_path / "k" / "pods").iterdir())


async def test_a_pre_stop_hook_runs_before_the_container_is_stopped(local: Local) -> None:
    out = local.tmp / "hook"
    out.mkdir()
    await local.create(
        pod(
            "hooked",
            sh(
                SLEEP_THEN_UP + "; wait $!",
                lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /out/said"]}}},
                volumeMounts=[{"name": "out", "mountPath": "/out"}],
            ),
            volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
        )
    )
    await local.follow_until("hooked", b"up\n")
    await local.cluster.client.delete("v1", "Pod", "hooked", "t")
    await local.kubelet.wait_stopped("t", "hooked")
    assert (out / "said").read_text() == "bye\n"


async def test_host_network_pods_use_the_node_address(local: Local) -> None:
    await local.create(pod("hostnet", sh("true"), hostNetwork=True, restartPolicy="Never"))
    done = await local.wait("hostnet", lambda p: phase(p) == "Succeeded")
    assert done["status"]["podIP"] == done["status"]["hostIP"]
    assert local.kubelet.pod_addresses.in_use == 0


async def test_kubelet_metrics_count_started_containers(local: Local) -> None:
    from prometheus_client import generate_latest

    await local.create(
        pod("counted", sh("true"), initContainers=[sh("true", name="i")], restartPolicy="Never")
    )
    await local.wait("counted", lambda p: phase(p) == "Succeeded")
    text = generate_latest(local.kubelet.metrics.registry).decode()
    assert 'kubelet_started_containers_total{container_type="container"} 1.0' in text
    assert 'kubelet_started_containers_total{container_type="init_container"} 1.0' in text
    assert "kubelet_running_pods 1.0" in text
