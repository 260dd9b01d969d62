"""A simulated Karpenter (core lifecycle controllers plus a cloud provider) for the in-process
cluster: NodeClaims become Nodes with the conditions, provider IDs, labels, finalizers and
timings of the real one.

For each NodeClaim, as ``sigs.k8s.io/karpenter``'s lifecycle controller does: add the
``karpenter.sh/termination`` finalizer and the ``AwaitingReconciliation`` conditions; *launch*
(the cloud provider creates an instance: ``Launched``, provider ID, capacity; an
insufficient-capacity error publishes an ``InsufficientCapacityError`` Event and deletes the
NodeClaim; another error leaves ``Launched=Unknown`` with the provider's message, retried, and
the NodeClaim is deleted after the launch timeout); *register* (the instance's Node appears with
the ``karpenter.sh/unregistered:NoExecute`` taint; the NodeClaim's labels, annotations, taints,
the finalizer and an owner reference are synced onto it, the taint is removed, ``Registered``;
a Node that never appears gets the NodeClaim deleted after the registration timeout);
*initialize* (the Node is Ready and its extended resources are advertised: ``Initialized``);
``Ready`` summarises the three. Deleting a NodeClaim deletes its Node, then lets both go.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Hashable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import anyio
import attrs
import structlog
from anyio.abc import TaskGroup

from kaito.cluster._azure._faults import Fault, FaultTable
from kaito.cluster._azure._vm import BootTimes, VirtualMachineNodes, gpu_count, node_name_for
from kaito.cluster._client import LocalClient
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj
from kaito.cluster._store import GroupResource, StorageEvent

__all__ = ("KarpenterFaultKind", "KarpenterSimulator", "KarpenterTimes")

log = structlog.get_logger(__name__)

API: Final = "karpenter.sh/v1"
NODECLAIMS: Final = GroupResource("karpenter.sh", "nodeclaims")
NODES: Final = GroupResource("", "nodes")
TERMINATION_FINALIZER: Final = "karpenter.sh/termination"
UNREGISTERED_TAINT: Final = {"key": "karpenter.sh/unregistered", "effect": "NoExecute"}
LABEL_REGISTERED: Final = "karpenter.sh/registered"
LABEL_INITIALIZED: Final = "karpenter.sh/initialized"
LABEL_INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
LIFECYCLE: Final = ("Launched", "Registered", "Initialized")

#: ``capacity``: the provider has no capacity (Karpenter deletes the NodeClaim and says so in an
#: Event); ``launch_failed``: another launch error (``message`` is the provider's text, e.g. a
#: quota error), retried; ``never_register``: launched, but no Node ever registers;
#: ``no_device_plugin``: the Node becomes Ready without ever advertising its GPUs.
KarpenterFaultKind = Literal["capacity", "launch_failed", "never_register", "no_device_plugin"]


@attrs.frozen
class KarpenterTimes:
    """Seconds each step takes, and Karpenter's timeouts (small in tests)."""

    launch: float = 1.0
    #: From launch to the instance's Node registering.
    register: float = 1.0
    boot: BootTimes = attrs.field(factory=BootTimes)
    launch_retry: float = 5.0
    #: Karpenter's ``LaunchTimeout`` (5 min) and ``registrationTimeout`` (15 min).
    launch_timeout: float = 300.0
    registration_timeout: float = 900.0
    #: Draining a Node before its instance is terminated.
    drain: float = 0.1


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(claim: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in (claim.get("status") or {}).get("conditions") or []}


def _requirement_labels(claim: Obj) -> dict[str, str]:
    """Single-valued ``In`` requirements become labels (Karpenter's rule)."""
    out = {}
    for req in (claim.get("spec") or {}).get("requirements") or ():
        values = req.get("values") or []
        if req.get("operator") == "In" and len(values) == 1:
            out[req["key"]] = values[0]
    return out


class KarpenterSimulator:
    """The simulated controller; a ``ControlLoop`` of the in-process cluster."""

    name = "karpenter"

    def __init__(
        self,
        client: LocalClient,
        *,
        times: KarpenterTimes,
        tasks: TaskGroup,
        cluster_key: str = "kaito-sim",
    ) -> None:
        self.client = client
        self.times = times
        self.faults: FaultTable[KarpenterFaultKind] = FaultTable()
        self.launches = 0
        self._tasks = tasks
        self._vms = VirtualMachineNodes(client, times.boot)
        self._cluster_key = cluster_key
        self._claim_of_node: dict[str, str] = {}
        self._first_seen: dict[str, float] = {}
        self._launched_at: dict[str, float] = {}
        self._instances: dict[str, anyio.CancelScope] = {}

    # -- the ControlLoop ------------------------------------------------------------------

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == NODECLAIMS:
            return (event.obj.name,)
        if gr == NODES and event.obj.name in self._claim_of_node:
            return (self._claim_of_node[event.obj.name],)
        return ()

    async def initial_keys(self) -> Iterable[Hashable]:
        return [c["metadata"]["name"] for c in await self.client.list(API, "NodeClaim")]

    async def reconcile(self, key: Hashable) -> float | None:
        name = str(key)
        try:
            claim = await self.client.get(API, "NodeClaim", name)
        except StatusError as err:
            if err.code != 404:
                raise
            await self._reap(name)
            return None
        if claim["metadata"].get("deletionTimestamp"):
            return await self._terminate(claim)
        if TERMINATION_FINALIZER not in (claim["metadata"].get("finalizers") or ()):
            finalizers = [*(claim["metadata"].get("finalizers") or ()), TERMINATION_FINALIZER]
            await self.client.patch(
                API,
                "NodeClaim",
                name,
                {
                    "metadata": {
                        "finalizers": finalizers,
                        "resourceVersion": claim["metadata"]["resourceVersion"],
                    }
                },
            )
            return 0.0
        conditions = _conditions(claim)
        if not conditions:
            await self._set(
                claim,
                dict.fromkeys(
                    (*LIFECYCLE, "Ready"),
                    ("Unknown", "AwaitingReconciliation", "object is awaiting reconciliation"),
                ),
            )
            return 0.0
        if conditions.get("Launched", {}).get("status") != "True":
            return await self._launch(claim, conditions)
        if conditions.get("Registered", {}).get("status") != "True":
            return await self._register(claim, conditions)
        if conditions.get("Initialized", {}).get("status") != "True":
            return await self._initialize(claim)
        return None

    # -- status ---------------------------------------------------------------------------

    async def _set(
        self,
        claim: Obj,
        changes: dict[str, tuple[str, str, str]],
        extra: Obj | None = None,
    ) -> Obj:
        """Set conditions (type -> status, reason, message) and recompute ``Ready``."""
        now = _now()
        current = _conditions(claim)
        generation = claim["metadata"].get("generation", 1)
        for type_, (state, reason, message) in changes.items():
            old = current.get(type_)
            current[type_] = {
                "type": type_,
                "status": state,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": old["lastTransitionTime"]
                if old and old.get("status") == state
                else now,
            }
        lifecycle = [current.get(t, {"status": "Unknown"}) for t in LIFECYCLE]
        if all(c["status"] == "True" for c in lifecycle):
            ready = ("True", "Ready", "")
        elif falses := [
            t for t, c in zip(LIFECYCLE, lifecycle, strict=True) if c["status"] == "False"
        ]:
            ready = ("False", "UnhealthyDependents", ", ".join(f"{t}=False" for t in falses))
        else:
            unknown = [
                t for t, c in zip(LIFECYCLE, lifecycle, strict=True) if c["status"] != "True"
            ]
            ready = ("Unknown", "ReconcilingDependents", ", ".join(f"{t}=Unknown" for t in unknown))
        old_ready = current.get("Ready")
        current["Ready"] = {
            "type": "Ready",
            "status": ready[0],
            "reason": ready[1],
            "message": ready[2],
            "observedGeneration": generation,
            "lastTransitionTime": old_ready["lastTransitionTime"]
            if old_ready and old_ready.get("status") == ready[0]
            else now,
        }
        status = {**(extra or {}), "conditions": [current[t] for t in sorted(current)]}
        return await self.client.patch(
            API, "NodeClaim", claim["metadata"]["name"], {"status": status}, subresource="status"
        )

    # -- launch ---------------------------------------------------------------------------

    def _scope(self, claim: Obj) -> dict[str, str]:
        labels = claim["metadata"].get("labels") or {}
        instance_type = _requirement_labels(claim).get(LABEL_INSTANCE_TYPE, "")
        return {"instance_type": instance_type, "workspace": labels.get("kaito.sh/workspace", "")}

    def _fault(self, claim: Obj, *kinds: KarpenterFaultKind) -> Fault[KarpenterFaultKind] | None:
        return self.faults.match(kinds, **self._scope(claim))

    def node_name(self, claim_name: str) -> str:
        """The Node a NodeClaim's instance registers as (AKS-style: the claim is the pool)."""
        return node_name_for(claim_name, self._cluster_key)

    async def _launch(self, claim: Obj, conditions: dict[str, Obj]) -> float | None:
        name = claim["metadata"]["name"]
        now = time.monotonic()
        first = self._first_seen.setdefault(name, now)
        if now - first < self.times.launch:
            return self.times.launch - (now - first)
        if now - first >= self.times.launch_timeout:
            log.info("karpenter_launch_timeout", nodeclaim=name)
            await self._delete_claim(name)
            return None
        fault = self._fault(claim, "capacity", "launch_failed")
        if fault is not None and fault.kind == "capacity":
            instance_type = self._scope(claim)["instance_type"]
            message = fault.message or (
                "creating instance, insufficient capacity, all requested instance types were "
                f"unavailable during launch (instance types: [{instance_type}])"
            )
            await self._event(
                claim, "InsufficientCapacityError", f"NodeClaim {name} event: {message}"
            )
            log.info("karpenter_insufficient_capacity", nodeclaim=name)
            await self._delete_claim(name)
            return None
        if fault is not None:
            message = fault.message or "creating instance, launch failed"
            if conditions.get("Launched", {}).get("message") != message:
                await self._set(claim, {"Launched": ("Unknown", "LaunchFailed", message[:300])})
            return self.times.launch_retry
        self.launches += 1
        instance_type = self._scope(claim)["instance_type"]
        node = self.node_name(name)
        provider_id = (
            f"azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
            f"mc_{self._cluster_key}/providers/Microsoft.Compute/virtualMachineScaleSets/"
            f"{node.removesuffix('000000')}/virtualMachines/0"
        )
        gpus = gpu_count(instance_type)
        resources = {
            "cpu": "24",
            "memory": "220Gi",
            "pods": "110",
            "ephemeral-storage": "1Ti",
            **({"nvidia.com/gpu": str(gpus)} if gpus else {}),
        }
        labels = {
            **_requirement_labels(claim),
            "karpenter.sh/capacity-type": "on-demand",
            "topology.kubernetes.io/zone": "eastus-1",
            **(claim["metadata"].get("labels") or {}),
        }
        await self.client.patch(API, "NodeClaim", name, {"metadata": {"labels": labels}})
        claim = await self.client.get(API, "NodeClaim", name)
        image = "AKSUbuntu-2204gen2containerd-202511.01.0"
        await self._set(
            claim,
            {"Launched": ("True", "Launched", "")},
            {
                "providerID": provider_id,
                "imageID": image,
                "capacity": resources,
                "allocatable": resources,
            },
        )
        log.info("karpenter_launched", nodeclaim=name, instance_type=instance_type, node=node)
        self._launched_at[name] = time.monotonic()
        if self._fault(claim, "never_register") is None:
            self._claim_of_node[node] = name
            instance = self._instances[name] = anyio.CancelScope()
            self._tasks.start_soon(self._boot, claim, node, provider_id, instance)
        return self.times.register

    async def _boot(
        self, claim: Obj, node: str, provider_id: str, instance: anyio.CancelScope
    ) -> None:
        """The instance boots and its kubelet registers; terminating it cancels this."""
        with instance:
            await self._run_instance(claim, node, provider_id)

    async def _run_instance(self, claim: Obj, node: str, provider_id: str) -> None:
        await anyio.sleep(self.times.register)
        taints = [dict(UNREGISTERED_TAINT), *((claim.get("spec") or {}).get("taints") or [])]
        labels = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **(claim["metadata"].get("labels") or {}),
            **_requirement_labels(claim),
            "karpenter.sh/capacity-type": "on-demand",
        }
        await self._vms.boot(
            node,
            instance_type=_requirement_labels(claim).get(LABEL_INSTANCE_TYPE, ""),
            labels=labels,
            taints=taints,
            provider_id=provider_id,
            device_plugin=self._fault(claim, "no_device_plugin") is None,
        )

    # -- registration and initialization --------------------------------------------------

    async def _node(self, name: str) -> Obj | None:
        try:
            return await self.client.get("v1", "Node", name)
        except StatusError as err:
            if err.code == 404:
                return None
            raise

    async def _register(self, claim: Obj, conditions: dict[str, Obj]) -> float | None:
        name = claim["metadata"]["name"]
        node = await self._node(self.node_name(name))
        if node is None:
            launched_at = self._launched_at.get(name)
            if launched_at is not None:
                age = time.monotonic() - launched_at
            else:  # launched before this simulator started: the condition's time (seconds)
                launched = conditions.get("Launched", {}).get("lastTransitionTime", _now())
                age = (
                    datetime.now(UTC)
                    - datetime.strptime(launched, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                ).total_seconds()
            if age >= self.times.registration_timeout:
                log.info("karpenter_registration_timeout", nodeclaim=name)
                await self._delete_claim(name)
                return None
            if conditions.get("Registered", {}).get("reason") != "NodeNotFound":
                await self._set(
                    claim,
                    {"Registered": ("Unknown", "NodeNotFound", "Node not registered with cluster")},
                )
            return min(1.0, self.times.registration_timeout)
        meta = node["metadata"]
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") != UNREGISTERED_TAINT["key"]
        ]
        for taint in (claim.get("spec") or {}).get("taints") or []:
            if not any(
                t.get("key") == taint["key"] and t.get("effect") == taint["effect"] for t in taints
            ):
                taints.append(taint)
        owner = {
            "apiVersion": API,
            "kind": "NodeClaim",
            "name": name,
            "uid": claim["metadata"]["uid"],
            "blockOwnerDeletion": True,
        }
        await self.client.patch(
            "v1",
            "Node",
            meta["name"],
            {
                "metadata": {
                    "labels": {**(claim["metadata"].get("labels") or {}), LABEL_REGISTERED: "true"},
                    "annotations": claim["metadata"].get("annotations") or {},
                    "finalizers": sorted({*(meta.get("finalizers") or ()), TERMINATION_FINALIZER}),
                    "ownerReferences": [owner],
                    "resourceVersion": meta["resourceVersion"],
                },
                "spec": {"taints": taints},
            },
        )
        await self._set(
            claim, {"Registered": ("True", "Registered", "")}, {"nodeName": meta["name"]}
        )
        log.info("karpenter_registered", nodeclaim=name, node=meta["name"])
        return 0.0

    async def _initialize(self, claim: Obj) -> float | None:
        node = await self._node((claim.get("status") or {}).get("nodeName", ""))
        if node is None:
            await self._set(
                claim,
                {"Initialized": ("Unknown", "NodeNotFound", "Node not registered with cluster")},
            )
            return 1.0
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or ()
        )
        if not ready:
            await self._set_once(claim, "Initialized", "NodeNotReady", "Node status is NotReady")
            return None
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource, quantity in (
            ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).items()
        ):
            if "/" in resource and str(quantity) not in ("0", "") and not allocatable.get(resource):
                await self._set_once(
                    claim,
                    "Initialized",
                    "ResourceNotRegistered",
                    f'Resource "{resource}" was requested but not registered',
                )
                return None
        await self.client.patch(
            "v1",
            "Node",
            node["metadata"]["name"],
            {"metadata": {"labels": {LABEL_INITIALIZED: "true"}}},
        )
        await self._set(claim, {"Initialized": ("True", "Initialized", "")})
        log.info("karpenter_initialized", nodeclaim=claim["metadata"]["name"])
        return None

    async def _set_once(self, claim: Obj, type_: str, reason: str, message: str) -> None:
        if _conditions(claim).get(type_, {}).get("reason") != reason:
            await self._set(claim, {type_: ("Unknown", reason, message)})

    # -- termination ----------------------------------------------------------------------

    async def _terminate(self, claim: Obj) -> float | None:
        name = claim["metadata"]["name"]
        instance = self._instances.pop(name, None)
        if instance is not None:
            instance.cancel()  # the cloud instance is terminated: its Node will not register
        node_name = (claim.get("status") or {}).get("nodeName") or self.node_name(name)
        node = await self._node(node_name)
        if node is not None:
            if not node["metadata"].get("deletionTimestamp"):
                await self.client.delete("v1", "Node", node_name)
                return self.times.drain
            finalizers = [
                f for f in node["metadata"].get("finalizers") or () if f != TERMINATION_FINALIZER
            ]
            await self.client.patch(
                "v1",
                "Node",
                node_name,
                {
                    "metadata": {
                        "finalizers": finalizers or None,
                        "resourceVersion": node["metadata"]["resourceVersion"],
                    }
                },
            )
            return 0.0
        self._claim_of_node.pop(node_name, None)
        finalizers = [
            f for f in claim["metadata"].get("finalizers") or () if f != TERMINATION_FINALIZER
        ]
        await self.client.patch(
            API,
            "NodeClaim",
            name,
            {
                "metadata": {
                    "finalizers": finalizers or None,
                    "resourceVersion": claim["metadata"]["resourceVersion"],
                }
            },
        )
        self._first_seen.pop(name, None)
        self._launched_at.pop(name, None)
        log.info("karpenter_nodeclaim_terminated", nodeclaim=name, node=node_name)
        return None

    async def _reap(self, name: str) -> None:
        """The NodeClaim is gone: terminate its instance, and its Node if one registered late."""
        self._first_seen.pop(name, None)
        self._launched_at.pop(name, None)
        instance = self._instances.pop(name, None)
        if instance is not None:
            instance.cancel()
        node_name = self.node_name(name)
        if self._claim_of_node.get(node_name) != name:
            return
        node = await self._node(node_name)
        if node is None:
            self._claim_of_node.pop(node_name, None)
            return
        await self.client.patch("v1", "Node", node_name, {"metadata": {"finalizers": None}})
        await self.client.delete("v1", "Node", node_name)
        log.info("karpenter_orphan_node_deleted", nodeclaim=name, node=node_name)

    async def _delete_claim(self, name: str) -> None:
        try:
            await self.client.delete(API, "NodeClaim", name)
        except StatusError as err:
            if err.code != 404:
                raise

    async def _event(self, claim: Obj, reason: str, message: str) -> None:
        now = _now()
        digest = hashlib.sha256(f"{claim['metadata']['uid']}/{reason}".encode()).hexdigest()[:16]
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{claim['metadata']['name']}.{digest}", "namespace": "default"},
            "involvedObject": {
                "apiVersion": API,
                "kind": "NodeClaim",
                "name": claim["metadata"]["name"],
                "uid": claim["metadata"]["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "karpenter"},
            "reportingComponent": "karpenter",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.create(event)
        except StatusError as err:
            if err.code != 409:
                raise
