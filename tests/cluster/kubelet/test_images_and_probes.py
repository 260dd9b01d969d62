"""Images that run here and those that cannot; probes executed against the real process."""

from __future__ import annotations

import sys

import httpx
import pytest

from tests.cluster._helpers import eventually
from tests.cluster.kubelet._helpers import Local, condition, phase, pod, sh, state, status_of

pytestmark = pytest.mark.anyio


async def test_an_image_that_cannot_run_here_fails_to_pull_then_backs_off(local: Local) -> None:
    await local.create(pod("nginx", {"name": "main", "image": "nginx:1.27"}))
    pulling = await local.wait(
        "nginx", lambda p: (state(p).get("waiting") or {}).get("reason") == "ImagePullBackOff"
    )
    message = state(pulling)["waiting"]["message"]
    assert message.startswith(
        'Back-off pulling image "nginx:1.27": ErrImagePull: Failed to pull image'
    )
    assert "has no container runtime to pull images with" in message
    assert "curlimages/curl, busybox" in message
    assert phase(pulling) == "Pending"
    failed = await local.wait_event("nginx", "Failed", contains="Failed to pull image")
    assert failed["involvedObject"]["fieldPath"] == "spec.containers{main}"
    await local.wait_event("nginx", "BackOff", contains='Back-off pulling image "nginx:1.27"')
    # After the back-off it tries again, fails again, and backs off twice as long.
    await local.clock.advance_when_due(10)

    async def pulled_twice() -> bool:
        return any(
            e["message"] == "Error: ErrImagePull" and e["count"] == 2
            for e in await local.events("nginx")
        )

    await eventually(local.cluster, pulled_twice)
    assert local.clock.next_deadline == local.clock.now() + 20


async def test_an_invalid_image_name_is_reported_as_such(local: Local) -> None:
    await local.create(pod("bad", {"name": "main", "image": "Not A Reference"}))
    bad = await local.wait(
        "bad", lambda p: (state(p).get("waiting") or {}).get("reason") == "InvalidImageName"
    )
    assert "invalid reference format" in state(bad)["waiting"]["message"]


async def test_the_runtime_image_runs_python_from_the_local_environment(local: Local) -> None:
    script = "import sys, kaito_runtime; print(sys.executable)"
    await local.create(
        pod(
            "runtime",
            {"name": "main", "image": "kaito-runtime:0.1.0", "command": ["python", "-c", script]},
            restartPolicy="Never",
        )
    )
    done = await local.wait("runtime", lambda p: phase(p) == "Succeeded")
    assert status_of(done)["imageID"] == "kaito-local://kaito-runtime"
    assert (await local.logs("runtime")).decode().strip() == sys.executable


async def test_curl_image_runs_the_hosts_curl_with_its_entrypoint(local: Local) -> None:
    await local.create(
        pod(
            "curl",
            {"name": "main", "image": "curlimages/curl", "args": ["--version"]},
            restartPolicy="Never",
        )
    )
    await local.wait("curl", lambda p: phase(p) == "Succeeded")
    assert (await local.logs("curl")).startswith(b"curl ")


async def test_http_server_becomes_ready_through_an_http_probe_on_its_pod_ip(local: Local) -> None:
    await local.create(
        pod(
            "web",
            {
                "name": "main",
                "image": "kaito-runtime:0.1.0",
                "command": ["python", "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
            },
        )
    )
    starting = await local.wait("web", lambda p: "running" in state(p))
    assert condition(starting, "Ready")["status"] == "False"
    ip = starting["status"]["podIP"]
    assert ip.startswith("127.1.")
    # Probe every period until the server answers (each step is one probe, no real waiting).
    ready: dict[str, object] = {}
    for _ in range(200):
        current = await local.pod("web")
        if condition(current, "Ready").get("status") == "True":
            ready = current
            break
        await local.clock.advance_when_due(5)
    assert ready, "the pod never became Ready"
    assert status_of(ready)["ready"] is True
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://{ip}:8080/")
    assert answer.status_code == 200
    # Only the pod's own IP answers: the server bound it, not every address.
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:8080/")


async def test_a_readiness_probe_that_never_passes_keeps_the_pod_unready(local: Local) -> None:
    await local.create(
        pod(
            "unready",
            sh(
                "sleep 1000",
                readinessProbe={"tcpSocket": {"port": 9}, "periodSeconds": 3},
            ),
        )
    )
    await local.wait("unready", lambda p: "running" in state(p))
    event = await local.wait_event("unready", "Unhealthy")
    assert event["message"].startswith("Readiness probe failed: dial tcp 127.1.")
    assert event["message"].endswith(":9: connect: connection refused")
    for _ in range(2):
        await local.clock.advance_when_due(3)

    async def failed_three_times() -> bool:
        return any(
            e["reason"] == "Unhealthy" and e["count"] == 3 for e in await local.events("unready")
        )

    await eventually(local.cluster, failed_three_times)
    current = await local.pod("unready")
    assert phase(current) == "Running"
    assert condition(current, "Ready") == {
        **condition(current, "Ready"),
        "status": "False",
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [main]",
    }
    assert status_of(current)["ready"] is False


async def test_a_failing_liveness_probe_restarts_the_container(local: Local) -> None:
    await local.create(
        pod(
            "liveness",
            sh(
                "touch /tmp/alive; sleep 1000",
                livenessProbe={
                    "exec": {"command": ["test", "-f", "/tmp/alive"]},
                    "periodSeconds": 10,
                    "failureThreshold": 2,
                },
            ),
        )
    )
    await local.wait("liveness", lambda p: "running" in state(p))
    code, _, _ = await local.run("liveness", ["rm", "/tmp/alive"])
    assert code == 0
    for _ in range(2):
        await local.clock.advance_when_due(10)
    restarted = await local.wait("liveness", lambda p: status_of(p).get("restartCount") == 1)
    assert status_of(restarted)["lastState"]["terminated"]["exitCode"] == 143
    await local.wait_event(
        "liveness", "Killing", contains="failed liveness probe, will be restarted"
    )
    unhealthy = await local.wait_event("liveness", "Unhealthy")
    assert unhealthy["message"].startswith("Liveness probe failed")


async def test_a_startup_probe_holds_readiness_until_it_passes(local: Local) -> None:
    await local.create(
        pod(
            "slow",
            sh(
                "sleep 1000",
                startupProbe={
                    "exec": {"command": ["test", "-f", "/tmp/started"]},
                    "periodSeconds": 2,
                    "failureThreshold": 30,
                },
            ),
        )
    )
    running = await local.wait("slow", lambda p: "running" in state(p))
    assert status_of(running)["started"] is False
    assert condition(running, "Ready")["status"] == "False"
    failed = await local.wait_event("slow", "Unhealthy")
    assert failed["message"] == "Startup probe failed: "
    await local.run("slow", ["touch", "/tmp/started"])
    await local.clock.advance_when_due(2)
    ready = await local.wait("slow", lambda p: condition(p, "Ready").get("status") == "True")
    assert status_of(ready)["started"] is True
