"""kubectl logs from the kubelet's container logs: containers by name, the previous run, the last
lines, timestamps, a byte limit, and following a running container until it ends."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster
from tests.cluster.streaming._pods import pod, sh

pytestmark = pytest.mark.kubectl


def test_logs_of_each_container_with_tail_timestamps_and_limits(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(
        ns,
        pod(
            "two",
            sh("first", "for i in 1 2 3 4 5; do echo line $i; done; exec sleep 3600"),
            sh("second", "echo from the second; exec sleep 3600"),
        ),
    )
    kubectl("wait", "--for=condition=Ready", "pod/two", "--timeout=60s")
    local.until(lambda: _logged(local, ns, "two", "first", b"line 5\n"))
    defaulted = kubectl("logs", "two")
    assert defaulted.stdout == "".join(f"line {i}\n" for i in range(1, 6))
    assert 'Defaulted container "first" out of: first, second' in defaulted.stderr
    local.until(lambda: _logged(local, ns, "two", "second", b"second\n"))
    assert kubectl("logs", "two", "-c", "second").stdout == "from the second\n"
    assert kubectl("logs", "two", "-c", "first", "--tail=2").stdout == "line 4\nline 5\n"
    assert kubectl("logs", "two", "-c", "first", "--limit-bytes=9").stdout == "line 1\nli"
    stamped = kubectl("logs", "two", "-c", "first", "--timestamps", "--tail=1").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line 5\n", stamped), stamped
    assert kubectl("logs", "two", "-c", "first", "--since=1h", "--tail=1").stdout == "line 5\n"
    unknown = kubectl("logs", "two", "-c", "third", check=False)
    assert "container third is not valid for pod two" in unknown.stderr
    negative = httpx.get(
        f"{local.cluster.url}/api/v1/namespaces/{ns}/pods/two/log",
        params={"container": "first", "tailLines": "-2"},
    )
    assert negative.status_code == 422
    assert negative.json()["message"] == (
        'PodLogOptions "two" is invalid: tailLines: Invalid value: -2: must be greater than or '
        "equal to 0"
    )


def test_logs_of_the_previous_run_after_a_restart(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    script = (
        "if [ -f /state/ran ]; then echo second run; exec sleep 3600; fi; "
        "touch /state/ran; echo first run; exit 1"
    )
    local.create(ns, pod("again", sh("main", script)))
    local.until(lambda: _restarted(local, ns, "again"))
    kubectl("wait", "--for=condition=Ready", "pod/again", "--timeout=60s")
    local.until(lambda: _logged(local, ns, "again", "main", b"second run\n"))
    assert kubectl("logs", "again", "--previous").stdout == "first run\n"
    assert kubectl("logs", "again").stdout == "second run\n"
    none = kubectl("logs", "two-never", "--previous", check=False)
    assert 'pods "two-never" not found' in none.stderr


def test_logs_follow_a_running_container_until_it_ends(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    script = (
        "echo waiting; while [ ! -f /state/go ]; do sleep 0.05; done; echo going; sleep 0.2; "
        "echo done"
    )
    local.create(ns, pod("follow", sh("main", script), restartPolicy="Never"))
    kubectl("wait", "--for=condition=Ready", "pod/follow", "--timeout=60s")
    follower = subprocess.Popen(
        kubectl.command("logs", "-f", "follow"), stdout=subprocess.PIPE, text=True
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "waiting\n"  # streamed while the container runs
        kubectl("exec", "follow", "--", "touch", "/state/go")
        rest = follower.stdout.read()
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert rest == "going\ndone\n"


async def _logged(local: LocalCluster, ns: str, name: str, container: str, text: bytes) -> bool:
    from kaito.cluster import LogOptions, StatusError

    try:
        chunks = local.kubelet.read_logs(ns, name, LogOptions(container=container))
        return text in b"".join([chunk async for chunk in chunks])
    except StatusError:
        return False


async def _restarted(local: LocalCluster, ns: str, name: str) -> bool:
    found = await local.cluster.client.get("v1", "Pod", name, ns)
    statuses = (found.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and statuses[0].get("restartCount", 0) >= 1
