"""Helpers for the engine's integration tests against ``kaito.cluster``'s in-process API server.

The engine talks to the server the way an operator talks to a cluster: a kubeconfig loaded by
``kubernetes_asyncio`` into the real :class:`~kaito.engine.KubeClient`. Waiting is driven by
events: informer handlers and the server's commit listener wake the waiters, and a
:class:`StepClock` says when something goes to sleep on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration

from kaito.cluster import Cluster, start_cluster
from kaito.engine import (
    ApiError,
    Backoff,
    FakeClock,
    Informer,
    KubeClient,
    Manager,
    ObjectKey,
    ObjectList,
    Resource,
    Result,
    WatchEvent,
    map_to_controller_owner,
)
from tests.engine.support import Recorder

JSON = dict[str, Any]
API_VERSION = "example.com/v1"

WIDGET_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}},
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, namespace: str, size: int = 1) -> JSON:
    """A Widget body."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size},
    }


@asynccontextmanager
async def engine_client(cluster: Cluster) -> AsyncIterator[KubeClient]:
    """A :class:`KubeClient` configured from the cluster's kubeconfig, closed on exit."""
    configuration = Configuration()
    await config.load_kube_config_from_dict(cluster.kubeconfig, client_configuration=configuration)
    client = KubeClient(ApiClient(configuration))
    try:
        yield client
    finally:
        await client.close()


class StepClock(FakeClock):
    """A :class:`FakeClock` that tells the test each time a task starts sleeping on it.

    With ``auto_advance`` every sleep jumps time to its own end at once (backoffs cost
    nothing, timers due by then fire), so a test needs no stepping at all.
    """

    def __init__(self, *, auto_advance: bool = False) -> None:
        super().__init__()
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []
        self._reported = 0
        self._changed = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._changed.set()
        if self.auto_advance:
            self.advance(max(seconds, 0.0))
            await anyio.lowlevel.checkpoint()
            return
        await super().sleep(seconds)

    async def next_sleep(self, *, within: float = 10.0) -> float:
        """Wait for the next sleep not reported yet; return its duration."""
        with anyio.fail_after(within):
            while len(self.sleeps) <= self._reported:
                self._changed = anyio.Event()
                await self._changed.wait()
        self._reported += 1
        return self.sleeps[self._reported - 1]


class Changes(Recorder):
    """Records an informer's events (as :class:`Recorder`) and wakes waiters after each one."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def on_add(self, obj: JSON) -> None:
        super().on_add(obj)
        self._changed.set()

    def on_update(self, old: JSON, new: JSON) -> None:
        super().on_update(old, new)
        self._changed.set()

    def on_delete(self, obj: JSON) -> None:
        super().on_delete(obj)
        self._changed.set()

    async def until(self, check: Callable[[], bool], *, within: float = 10.0) -> None:
        """Wait until ``check()`` holds, re-checking after every event (fail after ``within``)."""
        with anyio.fail_after(within):
            while not check():
                self._changed = anyio.Event()
                await self._changed.wait()


async def server_until(
    cluster: Cluster, check: Callable[[], Awaitable[bool]], *, within: float = 10.0
) -> None:
    """Wait until ``await check()`` holds, re-checking after every commit to the server's store."""
    changed = [anyio.Event()]

    def on_commit(*_: object) -> None:
        changed[0].set()

    remove = cluster.store.add_listener(on_commit)
    try:
        with anyio.fail_after(within):
            while True:
                changed[0] = anyio.Event()
                if await check():
                    return
                await changed[0].wait()
    finally:
        remove()


def cached_versions(informer: Informer) -> dict[str, str]:
    """``name -> resourceVersion`` of what the informer's cache holds."""
    return {
        obj["metadata"]["name"]: obj["metadata"]["resourceVersion"] for obj in informer.store.list()
    }


async def served_versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    """``name -> resourceVersion`` of the Widgets the server holds in ``namespace``."""
    items = await cluster.client.list(API_VERSION, "Widget", namespace)
    return {obj["metadata"]["name"]: obj["metadata"]["resourceVersion"] for obj in items}


WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
NS = "apps"


def build_widget_operator(manager: Manager, namespace: str = NS) -> None:
    """The operator under test: each Widget gets an owned ConfigMap, then its status."""
    client = manager.client
    widgets = manager.informer(WIDGETS, namespace=namespace)
    configmaps = manager.informer(CONFIGMAPS, namespace=namespace)
    for informer in (widgets, configmaps):
        informer.backoff = Backoff(initial=0.01, cap=0.05)  # retry refused lists quickly

    async def reconcile(key: ObjectKey) -> Result:
        obj = widgets.store.get(key)
        if obj is None:
            return Result()
        meta = obj["metadata"]
        name = f"{key.name}-config"
        if configmaps.store.get(ObjectKey(key.namespace, name)) is None:
            owner = {
                "apiVersion": API_VERSION,
                "kind": "Widget",
                "name": key.name,
                "uid": meta["uid"],
                "controller": True,
            }
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": key.namespace, "ownerReferences": [owner]},
                "data": {"size": str(obj["spec"]["size"])},
            }
            try:
                await client.create(CONFIGMAPS, body)
            except ApiError as err:
                if not err.conflict:  # already there, the cache had not seen it yet
                    raise
        status = {"observedGeneration": meta["generation"], "configMap": name}
        if obj.get("status") != status:
            await client.patch_status(WIDGETS, key, status)
        return Result()

    controller = manager.add_controller("widgets", reconcile, workers=4)
    controller.watch(widgets)
    controller.watch(configmaps, map_to_controller_owner("Widget", "example.com"))


async def converged(cluster: Cluster, names: set[str], namespace: str = NS) -> bool:
    """Every Widget has its ConfigMap and a status for its current generation."""
    items = await cluster.client.list(API_VERSION, "Widget", namespace)
    configmaps = {
        c["metadata"]["name"] for c in await cluster.client.list("v1", "ConfigMap", namespace)
    }
    return {o["metadata"]["name"] for o in items} == names and all(
        (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
        and f"{o['metadata']['name']}-config" in configmaps
        for o in items
    )


class ServerInTask:
    """Runs :func:`~kaito.cluster.start_cluster` in a task of the caller's task group, so a test
    can stop the API server (and start another on its port) while its clients keep running."""

    def __init__(self) -> None:
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def start(self, tg: anyio.abc.TaskGroup, **settings: Any) -> Cluster:
        """Start the server with ``settings``; return it once it serves."""
        cluster: Cluster = await tg.start(self._serve, settings)
        return cluster

    async def stop(self) -> None:
        """Stop the server (every watch ends, the port closes) and wait until it has."""
        self._stop.set()
        await self._stopped.wait()

    async def _serve(
        self, settings: dict[str, Any], *, task_status: anyio.abc.TaskStatus[Cluster]
    ) -> None:
        try:
            async with start_cluster(**settings) as cluster:
                task_status.started(cluster)
                await self._stop.wait()
        finally:
            self._stopped.set()


class RecordingClient:
    """The real client, with the informer's requests and every watch event (bookmarks too)
    recorded; waiters wake after each. Every other call goes straight to the client."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.lists: list[dict[str, Any]] = []
        self.watches: list[str | None] = []
        """The ``resourceVersion`` each watch asked for, in order."""
        self.events: list[WatchEvent] = []
        self._changed = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def _note(self) -> None:
        self._changed.set()

    async def list(self, resource: Resource, **options: Any) -> ObjectList:
        self.lists.append(options)
        self._note()
        return await self.client.list(resource, **options)

    @asynccontextmanager
    async def watch(
        self, resource: Resource, **options: Any
    ) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        self.watches.append(options.get("resource_version"))
        self._note()
        async with self.client.watch(resource, **options) as stream:

            async def events() -> AsyncIterator[WatchEvent]:
                async for event in stream:
                    self.events.append(event)
                    self._note()
                    yield event

            yield events()

    async def until(self, check: Callable[[], bool], *, within: float = 10.0) -> None:
        """Wait until ``check()`` holds, re-checking after every request and event."""
        with anyio.fail_after(within):
            while not check():
                self._changed = anyio.Event()
                await self._changed.wait()
