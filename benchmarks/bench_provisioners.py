"""100 Workspaces applied at once reach ready through each node backend, against the fake one.

For ``aks`` (the real Azure SDK and credential against the AKS emulator) and ``karpenter``
(NodeClaims the simulated Karpenter fulfils), prints the time from the first create to the last
Workspace ready and the API calls per Workspace: Kubernetes calls the manager made (controller
and provisioner together), and for ``aks`` the ARM and Entra calls. The baseline is the fake
backend (Nodes written directly) in the same harness. Every simulated cloud delay is zero, so
the figures are the software's own cost: SDK, TLS, polling cadence, extra reads.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

N = int(os.environ.get("KAITO_BENCH_WORKSPACES", "100"))
BASELINE = "fake backend"
DEADLINE_SECONDS = 600.0
ARM_MINIMUM = 4  # one agent pool: GET (not found), PUT, one operation poll, the final GET


class _Counting:
    """Counts the Kubernetes calls made through it (one call is one request)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("get", "list", "watch", "create", "replace", "patch", "patch_status", "delete"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.requests += 1
                return attr(*args, **kwargs)

            return counted
        return attr


@asynccontextmanager
async def _backend(name: str, cluster: Any, client: Any) -> AsyncIterator[tuple[Any, Any]]:
    from kaito.cluster import (
        AzureTimes,
        BootTimes,
        KarpenterTimes,
        azure_emulator,
        karpenter_simulator,
    )
    from kaito_provisioners.aks import AksProvisioner, AksSettings
    from kaito_provisioners.fake import FakeProvisioner
    from kaito_provisioners.karpenter import NodeClaimProvisioner

    instant = BootTimes(0.0, 0.0)
    if name == "fake":
        yield FakeProvisioner(client), None
    elif name == "karpenter":
        times = KarpenterTimes(launch=0.0, register=0.0, boot=instant)
        async with karpenter_simulator(cluster, times=times):
            yield NodeClaimProvisioner(client), None
    else:
        times = AzureTimes(create=0.0, update=0.0, delete=0.0, boot=instant)
        async with azure_emulator(cluster, times=times) as azure:
            env = azure.env(workload_identity=True)
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update({k: v for k, v in env.items() if k.startswith("AZURE_")})
            settings = AksSettings(
                subscription_id=azure.subscription_id, resource_group=azure.resource_group,
                cluster_name=azure.cluster_name, arm_endpoint=azure.arm_url,
                connection_verify=str(azure.ca_file), poll_interval=0.2, lro_wait=1.0,
            )  # fmt: skip
            provisioner = AksProvisioner(settings, client)
            try:
                yield provisioner, azure
            finally:
                await provisioner.aclose()
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


async def _measure(name: str) -> dict[str, float]:
    import anyio

    from kaito.api import workspace_crd
    from kaito.cluster import start_cluster
    from kaito.controllers import add_workspace_controller
    from kaito.engine import Manager, load_client
    from kaito.operator import controller_settings
    from kaito.options import ManagerOptions

    async with start_cluster(crds=[workspace_crd()], history_window=50 * N) as cluster:
        with tempfile.TemporaryDirectory() as scratch:
            cluster.write_kubeconfig(Path(scratch) / "kubeconfig")
            real = await load_client(str(Path(scratch) / "kubeconfig"))
            client = _Counting(real)
            try:
                async with _backend(name, cluster, client) as (provisioner, azure):
                    manager = Manager(client, name=f"bench-{name}")  # type: ignore[arg-type]
                    add_workspace_controller(
                        manager,
                        client,
                        provisioner,
                        controller_settings(ManagerOptions()),  # type: ignore[arg-type]
                    )
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(manager.run)
                        await manager.started.wait()
                        await manager.informers.wait_synced()
                        before = client.requests
                        start = time.perf_counter()
                        deadline = anyio.current_time() + DEADLINE_SECONDS
                        for i in range(N):
                            await cluster.client.create(_workspace(f"ws-{i}"), namespace="default")
                        while True:
                            found = await cluster.client.list(WS, "Workspace", "default")
                            ready = sum(
                                1 for w in found if (w.get("status") or {}).get("state") == "Ready"
                            )
                            if ready == N:
                                break
                            if anyio.current_time() > deadline:
                                raise TimeoutError(
                                    f"{name}: {ready}/{N} ready after {DEADLINE_SECONDS:g}s"
                                )
                            await anyio.sleep(0.05)
                        elapsed = time.perf_counter() - start
                        kube = client.requests - before
                        manager.stop()
                        tg.cancel_scope.cancel()
                    arm = (
                        sum(v for k, v in azure.requests.items() if k != "throttled")
                        if azure
                        else 0
                    )
                    tokens = sum(azure.tenant.issued.values()) if azure else 0
            finally:
                await real.close()
    return {"seconds": elapsed, "kube": kube / N, "arm": arm / N, "tokens": tokens}


WS = "kaito.sh/v1beta1"


def _workspace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": WS,
        "kind": "Workspace",
        "metadata": {"name": name},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"apps": name}},
        },
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    }


def run() -> list[str]:
    import anyio
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("azure").setLevel(logging.WARNING)
    results = {name: anyio.run(_measure, name) for name in ("fake", "aks", "karpenter")}
    base = results["fake"]
    lines = []
    for name in ("aks", "karpenter"):
        got = results[name]
        ratio = got["seconds"] / base["seconds"]
        lines.append(
            f"provisioners_{N}_ready_seconds[{name}]: ours={got['seconds']:.2f}s "
            f"baseline[{BASELINE}]={base['seconds']:.2f}s ratio={ratio:.2f}x"
        )
        lines.append(
            f"provisioners_kube_calls_per_workspace[{name}]: ours={got['kube']:.1f} "
            f"baseline[{BASELINE}]={base['kube']:.1f} ratio={got['kube'] / base['kube']:.2f}x"
        )
    aks = results["aks"]
    lines.append(
        f"provisioners_arm_calls_per_workspace[aks]: ours={aks['arm']:.1f} "
        f"baseline[minimum: GET, PUT, one operation poll, final GET]={ARM_MINIMUM} "
        f"ratio={aks['arm'] / ARM_MINIMUM:.2f}x (Entra tokens for all {N}: {aks['tokens']:.0f})"
    )
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
