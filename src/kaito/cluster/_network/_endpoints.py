"""The endpoints controllers of kube-controller-manager, in one loop: for every Service with a
selector, the EndpointSlices (``discovery.k8s.io/v1``) and the legacy ``Endpoints`` object that
list the Pods it selects, as kube-controller-manager writes them.

A Pod is listed once it has an IP and while it has not finished; it is ``ready`` when its Ready
condition is True, or always when the Service says ``publishNotReadyAddresses``; a Pod being
deleted is listed as ``terminating`` (EndpointSlices) or left out (Endpoints). Named target
ports resolve against each Pod's container ports, and Pods that resolve to different numbers
get different slices. The ``kubernetes`` Service lists the API server itself.

Unlike kube-controller-manager, one slice holds every endpoint of its port set (no split at 100).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import cast

import structlog

from kaito.cluster._builtins import SERVICES
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, loads
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import DeleteOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._store import EventType, GroupResource, StorageEvent

__all__ = (
    "ENDPOINTS",
    "ENDPOINT_SLICES",
    "MANAGED_BY_LABEL",
    "PODS",
    "SERVICE_NAME_LABEL",
    "SLICE_MANAGER",
    "EndpointsController",
    "pod_ready",
)

log = structlog.get_logger(__name__)

PODS = GroupResource("", "pods")
ENDPOINTS = GroupResource("", "endpoints")
ENDPOINT_SLICES = GroupResource("discovery.k8s.io", "endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
_HEADLESS_LABEL = "service.kubernetes.io/headless"
_KUBERNETES = ("default", "kubernetes")

Ports = tuple[tuple[str, int, str, str], ...]
"""``(name, port, protocol, appProtocol)`` of a slice, in the Service's port order."""

ApiServerAddress = Callable[[], tuple[str, int]]
"""``() -> (host, port)`` of the API server (the ``kubernetes`` Service's endpoint)."""


def pod_ready(pod: Obj) -> bool:
    """Whether the Pod's ``Ready`` condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _container_port(pod: Obj, name: str, protocol: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and (port.get("protocol") or "TCP") == protocol:
                value = port.get("containerPort")
                return value if isinstance(value, int) else None
    return None


def _resolve_ports(service: Obj, pod: Obj) -> Ports:
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = str(port.get("protocol") or "TCP")
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            number = _container_port(pod, target, protocol)
            if number is None:
                continue
        else:
            number = int(target) if target is not None else int(port.get("port", 0))
        resolved.append(
            (str(port.get("name") or ""), number, protocol, str(port.get("appProtocol") or ""))
        )
    return tuple(resolved)


def _port_list(ports: Ports) -> list[Obj]:
    out = []
    for name, number, protocol, app in ports:
        entry: Obj = {"name": name, "port": number, "protocol": protocol}
        if app:
            entry["appProtocol"] = app
        out.append(entry)
    return out


class EndpointsController:
    """Keeps EndpointSlices and Endpoints of selector Services in step with their Pods."""

    name = "endpoints"

    def __init__(self, rest: RestApi, *, apiserver: ApiServerAddress | None = None) -> None:
        self._rest = rest
        self._apiserver = apiserver
        self._ctx = RequestContext(
            user="system:serviceaccount:kube-system:endpointslice-controller"
        )
        self._selectors: dict[tuple[str, str], Mapping[str, str]] = {}

    # -- which Services a commit concerns ---------------------------------------------------

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == SERVICES:
            key = (event.obj.namespace, event.obj.name)
            if event.type is EventType.DELETED:
                self._selectors.pop(key, None)
            else:
                self._remember(key, loads(event.obj.data))
            return (key,)
        if gr == PODS:
            labels = [event.obj.labels]
            if event.prev is not None and event.prev.labels is not event.obj.labels:
                labels.append(event.prev.labels)
            namespace = event.obj.namespace
            return [
                key
                for key, selector in self._selectors.items()
                if key[0] == namespace and any(_selects(selector, found) for found in labels)
            ]
        if gr == ENDPOINT_SLICES and event.type is EventType.DELETED:
            service = event.obj.labels.get(SERVICE_NAME_LABEL)
            if service and event.obj.labels.get(MANAGED_BY_LABEL) == SLICE_MANAGER:
                return ((event.obj.namespace, service),)
        return ()

    def _remember(self, key: tuple[str, str], service: Obj) -> None:
        selector = (service.get("spec") or {}).get("selector")
        if isinstance(selector, dict) and selector:
            self._selectors[key] = {str(k): str(v) for k, v in selector.items()}
        else:
            self._selectors.pop(key, None)

    async def initial_keys(self) -> Iterable[Hashable]:
        keys = []
        for stored in (await self._rest.store.list(SERVICES, None)).items:
            key = (stored.namespace, stored.name)
            self._remember(key, loads(stored.data))
            keys.append(key)
        return keys

    # -- converging -------------------------------------------------------------------------

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = cast("tuple[str, str]", key)
        stored = await self._rest.store.get(SERVICES, namespace, name)
        if stored is None or stored.deleting:
            await self._write(namespace, name, None, {})
            return None
        service = loads(stored.data)
        spec = service.get("spec") or {}
        if (namespace, name) == _KUBERNETES and self._apiserver is not None:
            host, port = self._apiserver()
            conditions = {"ready": True, "serving": True, "terminating": False}
            api: Ports = (("https", port, "TCP", ""),)
            await self._write(
                namespace, name, service, {api: [{"addresses": [host], "conditions": conditions}]}
            )
            return None
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return None  # endpoints of selector-less Services are their owner's business
        groups: dict[Ports, list[Obj]] = {}
        publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
        for pod_stored in (await self._rest.store.list(PODS, namespace)).items:
            if not _selects(spec["selector"], pod_stored.labels):
                continue
            pod = loads(pod_stored.data)
            status = pod.get("status") or {}
            pod_spec = pod.get("spec") or {}
            ip = status.get("podIP")
            if not ip or status.get("phase") in ("Succeeded", "Failed"):
                continue
            ready = pod_ready(pod)
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            endpoint: Obj = {
                "addresses": [ip],
                "conditions": {
                    "ready": (ready or publish_not_ready) and not terminating,
                    "serving": ready,
                    "terminating": terminating,
                },
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"].get("uid", ""),
                },
            }
            if pod_spec.get("nodeName"):
                endpoint["nodeName"] = pod_spec["nodeName"]
            if pod_spec.get("hostname") and pod_spec.get("subdomain") == name:
                endpoint["hostname"] = pod_spec["hostname"]
            groups.setdefault(_resolve_ports(service, pod), []).append(endpoint)
        for endpoints in groups.values():
            endpoints.sort(key=lambda e: tuple(int(p) for p in e["addresses"][0].split(".")))
        await self._write(namespace, name, service, groups)
        return None

    def _type(self, group: str, plural: str) -> ResourceType:
        rt = self._rest.catalog.lookup(group, "v1", plural)
        assert rt is not None
        return rt

    async def _write(
        self, namespace: str, name: str, service: Obj | None, groups: dict[Ports, list[Obj]]
    ) -> None:
        await self._write_slices(namespace, name, service, groups)
        await self._write_endpoints(namespace, name, service, groups)

    async def _write_slices(
        self, namespace: str, name: str, service: Obj | None, groups: dict[Ports, list[Obj]]
    ) -> None:
        rt = self._type("discovery.k8s.io", "endpointslices")
        existing: dict[Ports, Obj] = {}
        extra: list[Obj] = []
        for stored in (await self._rest.store.list(ENDPOINT_SLICES, namespace)).items:
            if (
                stored.labels.get(SERVICE_NAME_LABEL) != name
                or stored.labels.get(MANAGED_BY_LABEL) != SLICE_MANAGER
            ):
                continue
            current = loads(stored.data)
            ports = tuple(
                (
                    str(p.get("name") or ""),
                    int(p.get("port") or 0),
                    str(p.get("protocol") or "TCP"),
                    str(p.get("appProtocol") or ""),
                )
                for p in current.get("ports") or []
            )
            if ports in existing or service is None:
                extra.append(current)
            else:
                existing[ports] = current
        wanted = dict(groups) if service is not None else {}
        if service is not None and not wanted:
            wanted[()] = []  # a placeholder slice, as kube-controller-manager keeps one
        for ports, endpoints in wanted.items():
            body = self._slice(namespace, name, service, ports, endpoints)
            current = existing.pop(ports, None)
            if current is None:
                await self._create(rt, namespace, body)
            elif (current.get("endpoints") or []) != body["endpoints"] or current["metadata"].get(
                "labels"
            ) != body["metadata"]["labels"]:
                current.update(endpoints=body["endpoints"], ports=body["ports"])
                current["metadata"]["labels"] = body["metadata"]["labels"]
                await self._update(rt, namespace, current)
        for stale in [*existing.values(), *extra]:
            await self._delete(rt, namespace, stale["metadata"]["name"])

    def _slice(
        self, namespace: str, name: str, service: Obj | None, ports: Ports, endpoints: list[Obj]
    ) -> Obj:
        assert service is not None
        meta = service["metadata"]
        labels = {
            **{
                k: v
                for k, v in (meta.get("labels") or {}).items()
                if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)
            },
            SERVICE_NAME_LABEL: name,
            MANAGED_BY_LABEL: SLICE_MANAGER,
        }
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels[_HEADLESS_LABEL] = ""
        body: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{name}-",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": name,
                        "uid": meta.get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": _port_list(ports),
        }
        if (namespace, name) == _KUBERNETES:
            body["metadata"].pop("generateName")
            body["metadata"]["name"] = name
        return body

    async def _write_endpoints(
        self, namespace: str, name: str, service: Obj | None, groups: dict[Ports, list[Obj]]
    ) -> None:
        rt = self._type("", "endpoints")
        stored = await self._rest.store.get(ENDPOINTS, namespace, name)
        if service is None:
            if stored is not None:
                await self._delete(rt, namespace, name)
            return
        subsets = []
        for ports, endpoints in groups.items():
            ready = [self._address(e) for e in endpoints if e["conditions"].get("ready")]
            not_ready = [
                self._address(e)
                for e in endpoints
                if not e["conditions"].get("ready") and not e["conditions"].get("terminating")
            ]
            if not ready and not not_ready:
                continue
            subset: Obj = {"ports": _port_list(ports)}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        labels = dict(service["metadata"].get("labels") or {})
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels[_HEADLESS_LABEL] = ""
        if stored is None:
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
            }
            if subsets:
                body["subsets"] = subsets
            await self._create(rt, namespace, body)
            return
        current = loads(stored.data)
        if (current.get("subsets") or []) == subsets and (
            current["metadata"].get("labels") or {}
        ) == labels:
            return
        current["metadata"]["labels"] = labels
        if subsets:
            current["subsets"] = subsets
        else:
            current.pop("subsets", None)
        await self._update(rt, namespace, current)

    @staticmethod
    def _address(endpoint: Obj) -> Obj:
        address: Obj = {"ip": endpoint["addresses"][0]}
        for field in ("hostname", "nodeName", "targetRef"):
            if field in endpoint:
                address[field] = endpoint[field]
        return address

    # -- writes (conflicts and races retry through the loop's backoff) ----------------------

    async def _create(self, rt: ResourceType, namespace: str, body: Obj) -> None:
        try:
            await self._rest.create(
                rt, namespace, body, WriteOptions(field_manager=SLICE_MANAGER), self._ctx
            )
        except StatusError as error:
            if (error.code == 404 and "namespaces" in error.message) or (
                error.code == 403 and "being terminated" in error.message
            ):
                return  # the namespace is going away, and the Service with it
            raise

    async def _update(self, rt: ResourceType, namespace: str, body: Obj) -> None:
        await self._rest.update(
            rt,
            namespace,
            body["metadata"]["name"],
            body,
            options=WriteOptions(field_manager=SLICE_MANAGER),
            ctx=self._ctx,
        )

    async def _delete(self, rt: ResourceType, namespace: str, name: str) -> None:
        try:
            await self._rest.delete(rt, namespace, name, DeleteOptions(), self._ctx)
        except StatusError as error:
            if error.code != 404:
                raise
