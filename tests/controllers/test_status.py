"""Status from observations: conditions, reasons, state; a crash-looping pod is never ready."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

from kaito.api import find_condition
from kaito.api.v1beta1 import Workspace
from kaito.controllers import (
    JobObservation,
    NodeObservation,
    PodProblem,
    WorkloadObservation,
    compute_status,
    diagnose_pods,
    restart_note,
)
from tests.controllers.test_objects import load

T0 = "2026-11-25T10:00:00Z"
T1 = "2026-11-25T10:05:00Z"


def pod(name: str = "ws-0", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"nodeName": "n1"}, "status": status}


def waiting(why: str, message: str = "", **last: Any) -> dict[str, Any]:
    cs: dict[str, Any] = {
        "name": "ws",
        "state": {"waiting": {"reason": why, "message": message}},
    }
    if last:
        cs["lastState"] = {"terminated": last}
    return cs


@pytest.mark.parametrize(
    ("pods", "reason", "text"),
    [
        ([pod(containerStatuses=[waiting("ImagePullBackOff", "not found")])], "ImagePullError", "not found"),
        ([pod(containerStatuses=[waiting("CrashLoopBackOff", exitCode=1, message="CUDA error")])],
         "ContainerCrashLoopBackOff", "in CrashLoopBackOff; last termination: exit code 1"),
        ([pod(containerStatuses=[{**waiting("CrashLoopBackOff"), "lastState": {
            "terminated": {"exitCode": 2, "message": "bad flag"}}}])],
         "ContainerCrashLoopBackOff", "last termination: bad flag"),
        ([pod(containerStatuses=[waiting("CrashLoopBackOff", reason="OOMKilled", exitCode=137)])],
         "ContainerOOMKilled", "OOMKilled"),
        ([pod(containerStatuses=[waiting("CreateContainerConfigError", "secret missing")])],
         "ContainerStartError", "secret missing"),
        ([pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")],
         "NodeMemoryPressure", "evicted due to node memory pressure"),
        ([pod(phase="Failed", reason="Evicted",
              message="The node was low on resource: ephemeral-storage.")],
         "NodeDiskPressure", "evicted due to node disk pressure"),
        ([pod(phase="Failed", reason="Evicted", message="preempted")], "PodEvicted", "preempted"),
        ([pod(containerStatuses=[waiting("ErrImageNeverPull", "not present")])], "ImagePullError",
         "image pull failed (ErrImageNeverPull): not present"),
        ([pod(containerStatuses=[waiting("PostStartHookError", "hook failed")])],
         "ContainerStartError", "failed to start (PostStartHookError)"),
        ([pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": "0/3 nodes: insufficient nvidia.com/gpu"}])],
         "Unschedulable", "insufficient nvidia.com/gpu"),
        ([pod(initContainerStatuses=[waiting("ErrImagePull", "unauthorized")])], "ImagePullError",
         "unauthorized"),
    ],
)  # fmt: skip
def test_pod_problems_are_classified(pods: list[dict[str, Any]], reason: str, text: str) -> None:
    problem = diagnose_pods(pods)
    assert problem is not None
    assert problem.reason == reason
    assert text in problem.message


def test_starting_pods_are_not_problems() -> None:
    starting = pod(containerStatuses=[waiting("ContainerCreating")])
    assert diagnose_pods([starting]) is None


def test_checks_run_in_upstreams_order_across_pods() -> None:
    # An OOM kill anywhere wins over an image pull error anywhere, whatever the Pods' order.
    pulling = pod("ws-0", containerStatuses=[waiting("ErrImagePull", "denied")])
    killed = pod("ws-1", containerStatuses=[waiting("CrashLoopBackOff", reason="OOMKilled",
                                                     exitCode=137)])  # fmt: skip
    problem = diagnose_pods([pulling, killed])
    assert problem is not None
    assert problem.reason == "ContainerOOMKilled"
    assert problem.message.startswith('container "ws" was OOMKilled (exit code 137)')


def test_a_running_pod_that_is_not_ready_is_no_problem() -> None:
    running = pod(phase="Running", containerStatuses=[{"name": "ws", "ready": False,
                                                        "state": {"running": {}}}])  # fmt: skip
    assert diagnose_pods([running]) is None


def test_a_restarted_pod_that_is_not_ready_yet_says_why() -> None:
    status = {"name": "ws", "ready": False, "state": {"running": {}}, "restartCount": 1,
              "lastState": {"terminated": {"exitCode": 137, "reason": "Error"}}}  # fmt: skip
    restarted = pod(phase="Running", containerStatuses=[status])
    note = 'container "ws" of pod ws-0 restarted after exit code 137 (Error); 1 restart'
    assert diagnose_pods([restarted]) is None
    assert restart_note([restarted]) == note
    assert restart_note([pod(phase="Running", containerStatuses=[{**status, "ready": True}])]) == ""
    ws = load("inference/kaito_workspace_phi_3.yaml")
    nodes = NodeObservation(wanted=1, ready_nodes=("n1",))
    workload = WorkloadObservation(True, replicas=1, ready_replicas=0, restarted=note)
    status_ = compute_status(ws, nodes, now=T0, workload=workload)
    ready = find_condition(status_.conditions, "InferenceReady")
    assert ready is not None
    assert ready.message == f"0/1 inference pods ready: {note}"


def test_long_messages_are_cut_as_upstream_cuts_them() -> None:
    problem = diagnose_pods([pod(containerStatuses=[waiting("ErrImagePull", "x" * 1000)])])
    assert problem is not None
    assert len(problem.message) == 256 and problem.message.endswith("...")


def conditions(ws: Workspace) -> dict[str, tuple[str, str]]:
    assert ws.status and ws.status.conditions
    return {c.type: (c.status, c.reason) for c in ws.status.conditions}


def test_inference_goes_from_pending_to_ready() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    status = compute_status(ws, NodeObservation(wanted=1, message="creating 1 node"), now=T0)
    ws = evolve(ws, status=status)
    assert status.state == "Pending"
    assert conditions(ws)["ResourceReady"] == ("False", "workspaceResourceStatusNotReady")
    assert conditions(ws)["InferenceReady"] == ("False", "WorkspaceInferenceStatusPending")
    ready_nodes = NodeObservation(wanted=1, ready_nodes=("ws123",))
    status = compute_status(ws, ready_nodes, now=T1,
                            workload=WorkloadObservation(True, replicas=1, ready_replicas=1))  # fmt: skip
    ws = evolve(ws, status=status)
    assert status.state == "Ready"
    assert status.worker_nodes == ("ws123",)
    assert status.target_node_count == 1
    assert conditions(ws)["InferenceReady"] == ("True", "WorkspaceInferenceStatusSuccess")
    assert conditions(ws)["WorkspaceSucceeded"] == ("True", "workspaceSucceeded")
    assert conditions(ws)["WorkspaceReady"] == ("True", "workspaceSucceeded")
    assert all(c.observed_generation == 1 for c in status.conditions or ())
    assert find_condition(status.conditions, "InferenceReady").last_transition_time == T1  # type: ignore[union-attr]


def test_crash_looping_pod_is_never_ready_even_if_counted_ready() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    nodes = NodeObservation(wanted=1, ready_nodes=("n1",))
    ready = compute_status(ws, nodes, now=T0, workload=WorkloadObservation(True, 1, 1))
    ws = evolve(ws, status=ready)
    crash = PodProblem("ContainerCrashLoopBackOff", "pod ws-0 container ws keeps crashing")
    status = compute_status(ws, nodes, now=T1, workload=WorkloadObservation(True, 1, 1, crash))
    ws = evolve(ws, status=status)
    assert conditions(ws)["InferenceReady"] == ("False", "ContainerCrashLoopBackOff")
    assert conditions(ws)["WorkspaceSucceeded"][0] == "False"
    assert status.state == "NotReady"  # it was ready before


def test_transition_time_moves_only_when_status_changes() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    nodes = NodeObservation(wanted=1, message="creating")
    first = compute_status(ws, nodes, now=T0)
    second = compute_status(
        evolve(ws, status=first), evolve(nodes, message="still creating"), now=T1
    )
    cond = find_condition(second.conditions, "ResourceReady")
    assert cond is not None
    assert cond.last_transition_time == T0
    assert "still creating" in cond.message


def test_provisioning_error_surfaces_in_resource_ready() -> None:
    ws = load("inference/kaito_workspace_phi_3.yaml")
    nodes = NodeObservation(wanted=1, reason="QuotaExceeded",
                            message="quota of Standard_NC6s_v3 cores exceeded in eastus")  # fmt: skip
    status = compute_status(ws, nodes, now=T0)
    cond = find_condition(status.conditions, "ResourceReady")
    assert cond is not None
    assert (cond.status, cond.reason) == ("False", "QuotaExceeded")
    assert "quota" in cond.message
    claim = find_condition(status.conditions, "NodeClaimReady")
    assert claim is not None and claim.reason == "QuotaExceeded"


def test_tuning_runs_then_succeeds_or_fails() -> None:
    ws = load("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    nodes = NodeObservation(wanted=1, ready_nodes=("n1",))
    running = compute_status(ws, nodes, now=T0,
                             job=JobObservation(True, active=1, progress="step 3/10, loss 1.2"))  # fmt: skip
    ws_running = evolve(ws, status=running)
    assert running.state == "Running"
    assert conditions(ws_running)["JobStarted"] == ("True", "WorkspaceTuningJobStatusStarted")
    assert "step 3/10" in (find_condition(running.conditions, "JobStarted").message)  # type: ignore[union-attr]
    done = compute_status(ws_running, nodes, now=T1, job=JobObservation(True, succeeded=1))
    assert done.state == "Succeeded"
    assert conditions(evolve(ws, status=done))["WorkspaceSucceeded"] == (
        "True",
        "workspaceSucceeded",
    )
    failed = compute_status(
        ws_running, nodes, now=T1,
        job=JobObservation(True, failed_reason="BackoffLimitExceeded",
                           failed_message="dataset has no column 'messages' (found: text)"),
    )  # fmt: skip
    assert failed.state == "Failed"
    ws_failed = evolve(ws, status=failed)
    assert conditions(ws_failed)["WorkspaceSucceeded"] == ("False", "workspaceFailed")
    assert conditions(ws_failed)["JobStarted"] == ("False", "WorkspaceTuningJobStatusFailed")
    assert "found: text" in find_condition(failed.conditions, "WorkspaceReady").message  # type: ignore[union-attr]
