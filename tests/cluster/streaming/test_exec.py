"""kubectl exec over WebSockets (v5.channel.k8s.io): output on stdout and stderr, the exit code
on the error channel, stdin closed by the client, a terminal with its size; v4 and v4.base64
for other clients; what is refused before the upgrade."""

from __future__ import annotations

import base64
import json

import aiohttp
import anyio
import httpx
import pytest

from tests.cluster.conftest import Kubectl
from tests.cluster.network._helpers import LocalCluster
from tests.cluster.streaming._pods import pod, sh
from tests.cluster.streaming._terminal import run_in_terminal

pytestmark = pytest.mark.kubectl


@pytest.fixture
def sleeper(local: LocalCluster, ns: str, kubectl: Kubectl) -> str:
    local.create(ns, pod("sleeper", sh("main", "echo started; exec sleep 3600")))
    kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=60s")
    return "sleeper"


def test_exec_separates_stdout_and_stderr_and_propagates_the_exit_code(
    kubectl: Kubectl, sleeper: str
) -> None:
    done = kubectl("exec", sleeper, "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert done.returncode == 7
    assert done.stdout == "out\n"
    assert done.stderr == "err\ncommand terminated with exit code 7\n"
    assert kubectl("exec", sleeper, "-c", "main", "--", "true").returncode == 0


def test_exec_passes_stdin_until_the_client_closes_it(kubectl: Kubectl, sleeper: str) -> None:
    lines = "".join(f"line {i}\n" for i in range(2000))
    done = kubectl("exec", "-i", sleeper, "--", "sh", "-c", "wc -l; echo closed", stdin=lines)
    assert done.stdout.split() == ["2000", "closed"]


def test_exec_with_a_terminal_sees_a_tty_of_the_clients_size(
    kubectl: Kubectl, sleeper: str
) -> None:
    code, output = run_in_terminal(
        kubectl.command(
            "exec",
            "-it",
            sleeper,
            "--",
            "sh",
            "-c",
            "tty; test -t 1 && echo on a terminal; stty size; exit 3",
        ),
        rows=33,
        cols=101,
    )
    text = output.decode(errors="replace")
    assert code == 3, text
    assert "/dev/pts/" in text
    assert "on a terminal\r\n33 101\r\n" in text
    assert text.endswith("command terminated with exit code 3\r\n")


def test_a_command_that_cannot_start_reports_the_runtimes_error(
    kubectl: Kubectl, sleeper: str
) -> None:
    done = kubectl("exec", sleeper, "--", "no-such-program", check=False)
    assert done.returncode != 0
    assert 'exec: "no-such-program": executable file not found in $PATH' in done.stderr


def test_exec_refusals_come_before_the_upgrade(kubectl: Kubectl, sleeper: str) -> None:
    wrong = kubectl("exec", sleeper, "-c", "nope", "--", "true", check=False)
    assert "container nope is not valid for pod sleeper" in wrong.stderr
    missing = kubectl("exec", "ghost", "--", "true", check=False)
    assert 'pods "ghost" not found' in missing.stderr


def _ws_messages(
    local: LocalCluster, ns: str, pod_name: str, protocol: str, command: list[str]
) -> list[tuple[int, bytes]]:
    """Run ``command`` through pods/exec with ``protocol``, as a non-kubectl client would."""

    async def talk() -> list[tuple[int, bytes]]:
        query = [("stdout", "true"), ("stderr", "true")] + [("command", c) for c in command]
        url = f"{local.cluster.url}/api/v1/namespaces/{ns}/pods/{pod_name}/exec"
        out: list[tuple[int, bytes]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, params=query, protocols=(protocol,)) as ws,
        ):
            assert ws.protocol == protocol
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    out.append((message.data[0], message.data[1:]))
                elif message.type == aiohttp.WSMsgType.TEXT:
                    out.append((ord(message.data[0]) - 48, base64.b64decode(message.data[1:])))
        return out

    result: list[tuple[int, bytes]] = anyio.run(talk)
    return result


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_v4_clients_get_channels_and_the_exit_status(
    local: LocalCluster, ns: str, sleeper: str, protocol: str
) -> None:
    messages = _ws_messages(local, ns, sleeper, protocol, ["sh", "-c", "echo hi; exit 2"])
    assert messages[0] == (1, b"")  # the streams are ready
    assert (1, b"hi\n") in messages
    channel, status = messages[-1]
    assert channel == 3
    assert json.loads(status) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: command terminated with exit "
        "code 2",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
    }


def test_spdy_upgrades_and_unknown_subprotocols_are_refused_with_the_reason(
    local: LocalCluster, ns: str, sleeper: str
) -> None:
    url = f"{local.cluster.url}/api/v1/namespaces/{ns}/pods/{sleeper}/exec?command=true&stdout=1"
    spdy = httpx.post(
        url,
        headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                 "X-Stream-Protocol-Version": "v4.channel.k8s.io"},
    )  # fmt: skip
    assert spdy.status_code == 400
    assert "Upgrade request required" in spdy.json()["message"]
    assert "SPDY is not supported" in spdy.json()["message"]
    old = httpx.get(
        url,
        headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Protocol": "channel.k8s.io"},
    )  # fmt: skip
    assert old.status_code == 400
    assert "requested protocol(s) are not supported: ['channel.k8s.io']" in old.json()["message"]
