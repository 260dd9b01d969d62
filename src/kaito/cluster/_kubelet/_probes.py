"""Startup, readiness and liveness probes, executed for real against the container: an HTTP GET or a
TCP connect to the Pod's IP, or a command run inside the container.

:func:`probe_loop` keeps the kubelet's timing: the first probe ``initialDelaySeconds`` after the
container started, then every ``periodSeconds``; a result flips after ``successThreshold``
consecutive successes or ``failureThreshold`` consecutive failures. Messages are the kubelet's
(``HTTP probe failed with statuscode: 503``, ``dial tcp 127.1.0.2:5000: connect: connection
refused``).
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

import aiohttp
import anyio
import attrs

from kaito.cluster._json import Obj
from kaito.cluster._kubelet._clock import KubeletClock

__all__ = ("ExecRunner", "ProbeResult", "Prober", "probe_loop")

ExecRunner = Callable[
    [tuple[str, str], tuple[str, ...], float], Awaitable[tuple[int | None, bytes]]
]
"""``run((pod uid, container), argv, timeout)`` -> ``(exit code, or None on timeout; output)``."""

_USER_AGENT = "kube-probe/1.32"
_MAX_OUTPUT = 10 * 1024


@attrs.frozen
class ProbeResult:
    """One probe's outcome and the kubelet's message for a failure."""

    success: bool
    message: str = ""


def _port(value: object, container: Obj) -> int | None:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    for port in container.get("ports") or []:
        if port.get("name") == text:
            return int(port.get("containerPort", 0))
    return None


def _errno(error: BaseException | None) -> int | None:
    """The OS error number behind ``error`` (anyio and aiohttp wrap it)."""
    seen = 0
    while error is not None and seen < 5:
        code = getattr(error, "errno", None)
        if isinstance(code, int):
            return code
        error = getattr(error, "os_error", None) or error.__cause__
        seen += 1
    return None


def _dial_error(host: str, port: int, error: BaseException) -> str:
    code = _errno(error)
    if code == errno.ECONNREFUSED:
        return f"dial tcp {host}:{port}: connect: connection refused"
    if code == errno.EHOSTUNREACH:
        return f"dial tcp {host}:{port}: connect: no route to host"
    if code == errno.ETIMEDOUT:
        return f"dial tcp {host}:{port}: i/o timeout"
    return f"dial tcp {host}:{port}: {error.__cause__ or error}"


class Prober:
    """Runs single probes; holds one HTTP client for the kubelet."""

    def __init__(self, exec_runner: ExecRunner) -> None:
        self._exec = exec_runner
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                headers={"User-Agent": _USER_AGENT, "Accept": "*/*"},
                auto_decompress=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(
        self, probe: Obj, container: Obj, pod_ip: str, key: tuple[str, str]
    ) -> ProbeResult:
        """Execute ``probe`` once (``key`` names the container for exec probes)."""
        timeout = float(probe.get("timeoutSeconds") or 1)
        if "httpGet" in probe:
            return await self._http(probe["httpGet"], container, pod_ip, timeout)
        if "tcpSocket" in probe:
            return await self._tcp(probe["tcpSocket"], container, pod_ip, timeout)
        if "exec" in probe:
            argv = tuple(str(a) for a in (probe["exec"].get("command") or []))
            code, output = await self._exec(key, argv, timeout)
            if code is None:
                return ProbeResult(False, f'command "{" ".join(argv)}" timed out')
            text = output[:_MAX_OUTPUT].decode(errors="replace").strip()
            return ProbeResult(code == 0, text if code else "")
        return ProbeResult(
            False,
            "the local kubelet runs httpGet, tcpSocket and exec probes; "
            f"{', '.join(k for k in ('grpc',) if k in probe) or 'this'} probe is not supported",
        )

    async def _http(self, spec: Obj, container: Obj, pod_ip: str, seconds: float) -> ProbeResult:
        host = str(spec.get("host") or pod_ip)
        port = _port(spec.get("port"), container)
        if port is None:
            return ProbeResult(False, f"port {spec.get('port')!r} is not a port of the container")
        scheme = str(spec.get("scheme") or "HTTP").lower()
        path = str(spec.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme}://{host}:{port}{path}"
        headers = {
            str(h.get("name")): str(h.get("value", "")) for h in spec.get("httpHeaders") or []
        }
        try:
            with anyio.fail_after(seconds):
                async with self._client().get(
                    url, headers=headers, ssl=False, allow_redirects=True, max_redirects=10
                ) as response:
                    await response.content.read(_MAX_OUTPUT)
                    code = response.status
        except TimeoutError:
            return ProbeResult(
                False,
                f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
                "headers)",
            )
        except aiohttp.ClientConnectorError as error:
            return ProbeResult(False, f'Get "{url}": {_dial_error(host, port, error)}')
        except (aiohttp.ClientError, OSError) as error:
            return ProbeResult(False, f'Get "{url}": {error}')
        if 200 <= code < 400:
            return ProbeResult(True)
        return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")

    async def _tcp(self, spec: Obj, container: Obj, pod_ip: str, seconds: float) -> ProbeResult:
        host = str(spec.get("host") or pod_ip)
        port = _port(spec.get("port"), container)
        if port is None:
            return ProbeResult(False, f"port {spec.get('port')!r} is not a port of the container")
        try:
            with anyio.fail_after(seconds):
                stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
        except OSError as error:
            return ProbeResult(False, _dial_error(host, port, error))
        await stream.aclose()
        return ProbeResult(True)


async def probe_loop(
    kind: str,
    probe: Obj,
    run: Callable[[], Awaitable[ProbeResult]],
    clock: KubeletClock,
    *,
    on_failure: Callable[[ProbeResult], Awaitable[None]],
    on_change: Callable[[bool], Awaitable[None]] | None = None,
) -> bool:
    """Probe on the kubelet's schedule.

    ``kind`` is ``startup`` (returns ``True`` once it succeeds, ``False`` once it has failed
    ``failureThreshold`` times in a row), ``liveness`` (returns ``False`` when it turns failing)
    or ``readiness`` (reports every change through ``on_change`` and runs until cancelled).
    ``on_failure`` hears every failed probe (the ``Unhealthy`` events).
    """
    period = max(float(probe.get("periodSeconds") or 10), 1.0)
    success_threshold = max(int(probe.get("successThreshold") or 1), 1)
    failure_threshold = max(int(probe.get("failureThreshold") or 3), 1)
    state = kind == "liveness"
    streak = 0
    last: bool | None = None
    await clock.sleep(float(probe.get("initialDelaySeconds") or 0))
    while True:
        result = await run()
        streak = streak + 1 if last == result.success else 1
        last = result.success
        if not result.success:
            await on_failure(result)
        threshold = success_threshold if result.success else failure_threshold
        if streak >= threshold and state != result.success:
            state = result.success
            if on_change is not None:
                await on_change(state)
            if kind == "liveness" and not state:
                return False
        if kind == "startup":
            if result.success:
                return True
            if streak >= failure_threshold:
                return False
        await clock.sleep(period)
