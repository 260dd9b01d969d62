"""kubectl attach: a running container's output from now on, and its stdin when the Pod asks for
one; closing stdin ends a ``stdinOnce`` container's input."""

from __future__ import annotations

import subprocess

import anyio
import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster
from tests.cluster.streaming._pods import pod, sh

pytestmark = pytest.mark.kubectl


def test_attach_with_stdin_talks_to_the_container(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    script = 'while read line; do echo "got $line"; done; echo "stdin closed"'
    local.create(
        ns,
        pod("talk", sh("main", script, stdin=True, stdinOnce=True), restartPolicy="Never"),
    )
    kubectl("wait", "--for=condition=Ready", "pod/talk", "--timeout=60s")
    attached = kubectl("attach", "-i", "talk", stdin="one\ntwo\n")
    assert attached.stdout == "got one\ngot two\nstdin closed\n"
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/talk", "--timeout=60s")


def test_attach_shows_output_from_now_on_until_the_container_ends(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    script = "echo before; while [ ! -f /state/go ]; do sleep 0.05; done; echo after; echo oops >&2"
    local.create(ns, pod("watch", sh("main", script), restartPolicy="Never"))
    kubectl("wait", "--for=condition=Ready", "pod/watch", "--timeout=60s")
    attach = subprocess.Popen(
        kubectl.command("attach", "watch"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        local.call(_until_attached, local)
        kubectl("exec", "watch", "--", "touch", "/state/go")
        out, err = attach.communicate(timeout=30)
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    assert attach.returncode == 0
    assert out == "after\n"  # not "before": attach starts at the current output
    assert "oops" in err


def test_attach_to_a_container_that_is_not_running_is_refused(
    local: LocalCluster, ns: str, kubectl: Kubectl
) -> None:
    local.create(ns, pod("quick", sh("main", "echo bye"), restartPolicy="Never"))
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/quick", "--timeout=60s")
    refused = kubectl("attach", "quick", check=False)
    assert refused.returncode != 0
    assert "cannot attach a container in a completed pod; current phase is Succeeded" in (
        refused.stderr
    )


async def _until_attached(local: LocalCluster) -> None:
    """Wait until an attach stream is open. Nothing is committed when one opens, so this polls
    the kubelet's live listeners (every 10 ms, for at most 20 s)."""
    with anyio.fail_after(20):
        while True:
            for runtime in local.kubelet._pods.values():
                for container in runtime.containers:
                    run = container.current
                    if run is not None and run.process is not None and run.process._listeners:
                        return
            await anyio.sleep(0.01)
