"""Integration fixtures: KAITO embedded on the in-process cluster, with a scriptable kubelet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
import yaml

from kaito.cluster import PodStatusWriter
from kaito.embedded import Embedded, embedded_kaito

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WS_API = "kaito.sh/v1beta1"


@attrs.define
class ScriptedKubelet:
    """Pods whose name starts with a scripted prefix get that outcome; others run at once."""

    waiting: dict[str, tuple[str, str]] = attrs.field(factory=dict)
    failing: dict[str, tuple[int, str, str]] = attrs.field(factory=dict)

    async def run_pod(self, pod: dict[str, Any], status: PodStatusWriter) -> None:
        name = pod["metadata"]["name"]
        for prefix, (reason, message) in self.waiting.items():
            if name.startswith(prefix):
                await status.waiting(reason, message)
                await anyio.sleep_forever()
        for prefix, (code, reason, message) in self.failing.items():
            if name.startswith(prefix):
                await status.failed(exit_code=code, reason=reason, message=message)
                return
        await status.running(ready=True)
        if (pod.get("spec") or {}).get("restartPolicy", "Always") in ("Never", "OnFailure"):
            await status.succeeded()
            return
        await anyio.sleep_forever()


@pytest.fixture
def kubelet() -> ScriptedKubelet:
    return ScriptedKubelet()


@pytest.fixture
async def kaito(kubelet: ScriptedKubelet, tmp_path: Path) -> AsyncIterator[Embedded]:
    async with embedded_kaito(kubelet=kubelet, kubeconfig_out=tmp_path / "kubeconfig") as running:
        yield running


def example(rel: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / rel).read_text())


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, within: float = 20.0, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something truthy (bounded; integration tests only)."""
    last: Any = None
    try:
        with anyio.fail_after(within):
            while True:
                last = await probe()
                if last:
                    return last
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}") from None


def conditions(ws: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (ws.get("status") or {}).get("conditions") or []}


async def get_ws(kaito: Embedded, name: str, namespace: str = "default") -> dict[str, Any]:
    return await kaito.cluster.client.get(WS_API, "Workspace", name, namespace)


async def wait_condition(
    kaito: Embedded,
    name: str,
    type_: str,
    status: str = "True",
    *,
    reason: str | None = None,
    namespace: str = "default",
    within: float = 20.0,
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        ws = await get_ws(kaito, name, namespace)
        cond = conditions(ws).get(type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return ws
        return None

    return await wait_for(probe, within=within, what=f"{name} {type_}={status} {reason or ''}")  # type: ignore[no-any-return]
