"""The node-side APIs kubectl's streaming will use: container logs (current, previous, tail,
follow, timestamps, limits) and exec/attach into a running container."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest

from kaito.cluster import LogOptions, StatusError
from tests.cluster.kubelet._helpers import (
    NS,
    SLEEP_THEN_UP,
    Local,
    phase,
    pod,
    sh,
    state,
    status_of,
)

pytestmark = pytest.mark.anyio


async def test_logs_current_previous_tail_timestamps_and_limit(local: Local) -> None:
    await local.create(
        pod("counter", sh("for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; exit 1"))
    )
    await local.wait(
        "counter", lambda p: (state(p).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    )
    previous = await local.logs("counter", previous=True)
    assert previous == b"line 1\nline 2\nline 3\nline 4\nline 5\noops\n"
    assert await local.logs("counter", tail_lines=2) == b"line 5\noops\n"
    assert await local.logs("counter", limit_bytes=10) == b"line 1\nlin"
    stamped = (await local.logs("counter", timestamps=True, tail_lines=1)).decode()
    stamp, _, text = stamped.partition(" ")
    assert text == "oops\n"
    assert dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert await local.logs("counter", since=future) == b""


async def test_follow_streams_until_the_container_ends(local: Local) -> None:
    await local.create(
        pod(
            "talker",
            sh("echo one; read -r line; echo got $line", stdin=True, stdinOnce=True),
            restartPolicy="Never",
        )
    )
    await local.wait("talker", lambda p: "running" in state(p))
    seen = b""
    async with anyio.create_task_group() as tg:

        async def feed() -> None:
            async with local.kubelet.attach(NS, "talker", None) as attached:
                assert attached.stdin
                await attached.send_stdin(b"two\n")

        async for chunk in local.kubelet.read_logs(NS, "talker", LogOptions(follow=True)):
            seen += chunk
            if seen == b"one\n":
                tg.start_soon(feed)
    assert seen == b"one\ngot two\n"
    await local.wait("talker", lambda p: phase(p) == "Succeeded")


async def test_log_requests_are_checked_as_the_kubelet_checks_them(local: Local) -> None:
    await local.create(
        pod(
            "pair",
            sh("sleep 1000", name="a"),
            sh("sleep 1000", name="b"),
            initContainers=[sh("true", name="setup")],
        )
    )
    await local.wait("pair", lambda p: "running" in state(p, "a"))
    with pytest.raises(StatusError) as missing:
        local.kubelet.read_logs(NS, "pair", LogOptions())
    assert missing.value.code == 400
    assert missing.value.message == (
        "a container name must be specified for pod pair, choose one of: [a b] or one of the "
        "init containers: [setup]"
    )
    with pytest.raises(StatusError, match="container c is not valid for pod pair"):
        local.kubelet.read_logs(NS, "pair", LogOptions(container="c"))
    with pytest.raises(
        StatusError, match='previous terminated container "a" in pod "pair" not found'
    ):
        local.kubelet.read_logs(NS, "pair", LogOptions(container="a", previous=True))
    with pytest.raises(StatusError) as gone:
        local.kubelet.read_logs(NS, "nope", LogOptions())
    assert (gone.value.code, gone.value.message) == (404, 'pods "nope" not found')
    await local.create(pod("pulling", {"name": "main", "image": "nginx"}))
    await local.wait(
        "pulling",
        lambda p: "waiting" in state(p) and state(p)["waiting"]["reason"] != "ContainerCreating",
    )
    with pytest.raises(StatusError, match='container "main" in pod "pulling" is waiting to start'):
        local.kubelet.read_logs(NS, "pulling", LogOptions())


async def test_exec_runs_in_the_container_with_its_environment(local: Local) -> None:
    await local.create(
        pod(
            "target",
            sh(
                "echo secret > /tmp/only-here; " + SLEEP_THEN_UP + "; wait $!",
                env=[{"name": "GREETING", "value": "hello"}],
                workingDir="/tmp",
            ),
        )
    )
    await local.follow_until("target", b"up\n")
    code, out, err = await local.run(
        "target", ["sh", "-c", 'echo "$GREETING from $(pwd) on $(hostname)"; cat only-here; exit 4']
    )
    assert (code, out, err) == (4, b"hello from /tmp on target\nsecret\n", b"")
    code, out, err = await local.run("target", ["sh", "-c", "echo to stderr >&2"])
    assert (code, out, err) == (0, b"", b"to stderr\n")
    async with local.kubelet.exec(NS, "target", None, ["cat"], stdin=True) as session:
        await session.send_stdin(b"echoed back")
        await session.close_stdin()
        chunks = [data async for _, data in session.output]
        assert b"".join(chunks) == b"echoed back"
        assert await session.wait() == 0
    with pytest.raises(StatusError, match="executable file not found in \\$PATH"):
        await local.run("target", ["no-such-tool"])


async def test_exec_with_a_terminal(local: Local) -> None:
    await local.create(pod("tty", sh(SLEEP_THEN_UP + "; wait $!")))
    await local.follow_until("tty", b"up\n")
    async with local.kubelet.exec(
        NS, "tty", None, ["sh", "-c", "tty; stty size"], tty=True
    ) as session:
        session.resize(120, 40)
        output = b"".join([data async for _, data in session.output])
        assert await session.wait() == 0
    lines = output.decode().replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] in ("40 120", "0 0")


async def test_exec_needs_a_running_container(local: Local) -> None:
    await local.create(pod("finished", sh("true"), restartPolicy="Never"))
    await local.wait("finished", lambda p: phase(p) == "Succeeded")
    with pytest.raises(StatusError, match='container not found \\("main"\\)'):
        await local.run("finished", ["true"])


async def test_exec_probe_and_exec_leave_no_process(local: Local) -> None:
    await local.create(
        pod(
            "probed",
            sh(
                SLEEP_THEN_UP + "; wait $!",
                readinessProbe={"exec": {"command": ["sh", "-c", "sleep 30"]}, "timeoutSeconds": 1},
            ),
        )
    )
    await local.follow_until("probed", b"up\n")
    # The probe runs past its timeout and is killed; the pod stays unready.
    event = await local.wait_event("probed", "Unhealthy")
    assert event["message"] == 'Readiness probe failed: command "sh -c sleep 30" timed out'
    assert status_of(await local.pod("probed"))["ready"] is False
    assert not local.kubelet._execs


async def test_attach_to_an_interactive_container_with_a_terminal(local: Local) -> None:
    # What `kubectl run -it --rm --restart=Never` creates: stdin, stdinOnce and a terminal.
    await local.create(
        pod(
            "shell",
            sh("read -r line; echo you said $line", stdin=True, stdinOnce=True, tty=True),
            restartPolicy="Never",
        )
    )
    await local.wait("shell", lambda p: "running" in state(p))
    seen = b""
    async with local.kubelet.attach(NS, "shell", None) as attached:
        assert attached.tty
        attached.resize(100, 30)
        await attached.send_stdin(b"hello\n")
        with anyio.fail_after(20):
            async for _, data in attached.output:
                seen += data
                if b"you said hello" in seen:
                    break
    done = await local.wait("shell", lambda p: phase(p) == "Succeeded")
    assert state(done)["terminated"]["exitCode"] == 0
    # A terminal's output is logged as stdout, with the terminal's line endings.
    assert (await local.logs("shell")).replace(b"\r", b"").endswith(b"you said hello\n")
