"""What ``kaito up`` tells its user while Workspaces come up: the story the Pods tell.

Top layer. :class:`Reporter` looks at the Workspaces' Pods once a second and says, once each:
the tuning data being downloaded, the tuning progress (step, loss, ETA, from the progress the
tuning Pod serves), an adapter image being pulled, and where each ready inference Workspace
answers (the Service's reachable address). It also records a ``StandInModel`` Event on every
runtime Pod whose model is a stand-in, so ``kubectl describe pod`` says so, and starts building
a new Workspace's stand-in as soon as the Workspace appears.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import anyio
import anyio.abc
import structlog

from kaito.api.constants import LABEL_WORKSPACE
from kaito.catalog import preset_catalog
from kaito.cluster import Cluster, StatusError
from kaito.controllers import http_progress_reader
from kaito.local._hub import ModelUnavailableError
from kaito.local._models import LocalModels

__all__ = ("Reporter", "chat_url")

log = structlog.get_logger(__name__)

_PROGRESS_EVERY: Final = 3.0
_SERVICE_PORT: Final = 80


def chat_url(cluster: Cluster, namespace: str, service: str) -> str | None:
    """Where the Service's port 80 answers from this machine (``http://CLUSTER-IP/chat``, or
    the port the proxy had to use instead), or None while it is not served."""
    network = cluster.network
    if network is None:
        return None
    for address in network.addresses():
        if (address.namespace, address.name, address.port) == (namespace, service, _SERVICE_PORT):
            return f"{address.url.rstrip('/')}/chat"
    return None


class Reporter:
    """Says what the Workspaces' Pods are doing (see the module's docstring)."""

    def __init__(
        self,
        cluster: Cluster,
        models: LocalModels | None,
        say: Callable[[str], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self.cluster = cluster
        self.models = models
        self.say = say
        self.interval = interval
        self._said: set[tuple[str, ...]] = set()
        self._progress: dict[str, tuple[str, float]] = {}
        self._read_progress = http_progress_reader(timeout=1.0)
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        """Report until cancelled; build the stand-in of each new Workspace's preset meanwhile."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                while True:
                    try:
                        await self.report_once()
                    except StatusError as err:  # the API server is going away
                        log.debug("report_failed", error=err.message)
                    await anyio.sleep(self.interval)
            finally:
                self._tg = None

    def _prepare(self, ws: dict[str, Any]) -> None:
        """Start building the stand-in of the Workspace's preset now, while its nodes come up
        and its data downloads, rather than on the Pod's first download (which would wait)."""
        if self.models is None or self._tg is None:
            return
        section = ws.get("inference") or ws.get("tuning") or {}
        preset = preset_catalog().get(((section.get("preset") or {}).get("name")) or "")
        if preset is not None and self._once("prepare", preset.model_id.lower()):
            self._tg.start_soon(self._resolve, preset.model_id)

    async def _resolve(self, model_id: str) -> None:
        assert self.models is not None
        try:
            await self.models.resolve(model_id)
        except ModelUnavailableError as err:
            self.say(f"no weights for {model_id}: {err.message}")

    def _once(self, *key: str) -> bool:
        if key in self._said:
            return False
        self._said.add(key)
        return True

    async def report_once(self) -> None:
        """One look at the Pods and Workspaces."""
        client = self.cluster.client
        pods = await client.list("v1", "Pod", None, label_selector=LABEL_WORKSPACE)
        for pod in pods:
            await self._pod(pod)
        for ws in await client.list("kaito.sh/v1beta1", "Workspace", None):
            self._prepare(ws)
            self._workspace(ws)

    async def _pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid, name = meta.get("uid", ""), meta["name"]
        workspace = (meta.get("labels") or {}).get(LABEL_WORKSPACE, "")
        status = pod.get("status") or {}
        spec = pod.get("spec") or {}
        images = {c["name"]: c.get("image", "") for c in spec.get("initContainers") or []}
        for cs in status.get("initContainerStatuses") or []:
            state = cs.get("state") or {}
            container = cs.get("name", "")
            if container.startswith("puller-"):
                image = _pull_target(spec, container) or images.get(container, "")
                if "running" in state and self._once(uid, container, "running"):
                    self.say(f"pulling adapter image {image} for workspace/{workspace}")
                done = state.get("terminated") or {}
                if done.get("exitCode") == 0 and self._once(uid, container, "done"):
                    self.say(f"pulled adapter image {image} into pod {name}")
            elif (
                container == "data-downloader"
                and "running" in state
                and self._once(uid, container, "running")
            ):
                self.say(f"downloading the tuning data for workspace/{workspace}")
        await self._stand_in_event(pod, workspace)
        if (meta.get("labels") or {}).get("job-name") and status.get("phase") == "Running":
            await self._tuning_progress(uid, workspace, status.get("podIP"))

    async def _tuning_progress(self, uid: str, workspace: str, pod_ip: str | None) -> None:
        if not pod_ip:
            return
        last, when = self._progress.get(uid, ("", 0.0))
        now = time.monotonic()
        if now - when < _PROGRESS_EVERY:
            return
        line = await self._read_progress(pod_ip)
        if line and line != last:
            self._progress[uid] = (line, now)
            self.say(f"tuning workspace/{workspace}: {line}")

    def _workspace(self, ws: dict[str, Any]) -> None:
        meta = ws["metadata"]
        if "inference" not in ws or (ws.get("status") or {}).get("state") != "Ready":
            return
        namespace, name = meta.get("namespace", "default"), meta["name"]
        url = chat_url(self.cluster, namespace, name)
        if url is not None and self._once(meta.get("uid", ""), "url", url):
            self.say(
                f"workspace/{name} answers at {url}: curl -X POST {url} -H "
                '"Content-Type: application/json" -d \'{"prompt":"What is KAITO?"}\''
            )

    async def _stand_in_event(self, pod: dict[str, Any], workspace: str) -> None:
        if self.models is None or not workspace:
            return
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        try:
            ws = await self.cluster.client.get(
                "kaito.sh/v1beta1", "Workspace", workspace, namespace
            )
        except StatusError:
            return
        section = ws.get("inference") or ws.get("tuning") or {}
        preset = preset_catalog().get(((section.get("preset") or {}).get("name")) or "")
        if preset is None:
            return
        stand_in = self.models.stand_ins.get(preset.model_id.lower())
        if stand_in is None or not self._once(meta.get("uid", ""), "stand-in"):
            return
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid", ""),
            },
            "reason": "StandInModel",
            "message": f"{stand_in.note} (digest {stand_in.digest[:12]}, built by kaito up)",
            "type": "Warning",
            "source": {"component": "kaito-up", "host": socket.gethostname()},
            "reportingComponent": "kaito-up",
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.cluster.client.create(event)
        except StatusError as err:
            log.debug("stand_in_event_not_recorded", pod=meta["name"], error=err.message)


def _pull_target(spec: dict[str, Any], container: str) -> str | None:
    """The adapter image a ``puller-*`` init container pulls (its command's first argument
    after ``pull``)."""
    for init in spec.get("initContainers") or []:
        if init.get("name") != container:
            continue
        command = [*(init.get("command") or []), *(init.get("args") or [])]
        if "pull" in command:
            index = command.index("pull")
            if index + 1 < len(command):
                return str(command[index + 1])
    return None
