"""Workload controllers: Deployments and StatefulSets create Pods and report ready/available
replicas once their Pods are Ready; Jobs create a Pod and report succeeded/failed from it.

Deployments own their Pods directly (no intermediate ReplicaSet); rolling updates replace
outdated Pods once the new ones are Ready.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable
from typing import cast

from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, loads
from kaito.cluster._meta import format_time, generate_name_suffix
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import DeleteOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._sim._common import (
    PODS,
    controller_ref,
    emit_event,
    owner_reference,
    pod_ready,
    pod_terminal,
    set_condition,
    template_hash,
)
from kaito.cluster._store import EventType, GroupResource, StorageEvent

__all__ = ("DeploymentController", "JobController", "StatefulSetController")

DEPLOYMENTS = GroupResource("apps", "deployments")
STATEFULSETS = GroupResource("apps", "statefulsets")
JOBS = GroupResource("batch", "jobs")
PVCS = GroupResource("", "persistentvolumeclaims")


class _WorkloadController:
    """Shared plumbing: keys from owner and Pod commits, Pod listing, status writes."""

    name = ""
    owner_gr = GroupResource("", "")
    owner_kind = ""
    component = ""

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        self._ctx = RequestContext(user=f"system:serviceaccount:kube-system:{self.component}")

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        if gr == self.owner_gr:
            return (
                () if event.type is EventType.DELETED else ((event.obj.namespace, event.obj.name),)
            )
        if gr != PODS or not event.obj.owners:
            return ()
        ref = controller_ref(loads(event.obj.data))
        if ref is None or ref.get("kind") != self.owner_kind:
            return ()
        return ((event.obj.namespace, ref.get("name", "")),)

    async def initial_keys(self) -> Iterable[Hashable]:
        return [
            (s.namespace, s.name) for s in (await self._rest.store.list(self.owner_gr, None)).items
        ]

    def _type(self, gr: GroupResource) -> ResourceType:
        rt = self._rest.catalog.storage_type(gr)
        assert rt is not None
        return rt

    async def _owned_pods(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        pods = []
        for stored in (await self._rest.store.list(PODS, owner["metadata"]["namespace"])).items:
            if uid not in stored.owners or stored.deleting:
                continue
            pod = loads(stored.data)
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") == uid:
                pods.append(pod)
        return pods

    def _pod_from_template(self, owner: Obj, name: str, extra_labels: dict[str, str]) -> Obj:
        template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), **extra_labels}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": owner["metadata"]["namespace"],
                "labels": labels,
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [owner_reference(owner)],
            },
            "spec": template.get("spec") or {},
        }

    async def _create_pod(self, owner: Obj, pod: Obj) -> None:
        try:
            await self._rest.create(
                self._type(PODS), pod["metadata"]["namespace"], pod, WriteOptions(), self._ctx
            )
        except StatusError as error:
            if error.code in (403, 409):
                return
            await emit_event(
                self._rest,
                owner,
                type="Warning",
                reason="FailedCreate",
                message=f"Error creating: {error.message}",
                component=self.component,
                ctx=self._ctx,
            )
            raise
        await emit_event(
            self._rest,
            owner,
            type="Normal",
            reason="SuccessfulCreate",
            message=(
                f"create Pod {pod['metadata']['name']} in {self.owner_kind} "
                f"{owner['metadata']['name']} successful"
            ),
            component=self.component,
            ctx=self._ctx,
        )

    async def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self._rest.delete(
                self._type(PODS),
                meta["namespace"],
                meta["name"],
                DeleteOptions(precondition_uid=meta["uid"]),
                self._ctx,
            )
        except StatusError as error:
            if error.code not in (404, 409):
                raise

    async def _write_status(self, owner: Obj, status: Obj) -> None:
        current = owner.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        meta = owner["metadata"]
        try:
            await self._rest.patch(
                self._type(self.owner_gr),
                meta["namespace"],
                meta["name"],
                "application/merge-patch+json",
                {"status": status},
                options=WriteOptions(),
                ctx=self._ctx,
                subresource="status",
            )
        except StatusError as error:
            if error.code != 404:
                raise

    async def _owner(self, key: Hashable) -> Obj | None:
        namespace, name = cast("tuple[str, str]", key)
        stored = await self._rest.store.get(self.owner_gr, namespace, name)
        if stored is None or stored.deleting:
            return None
        return loads(stored.data)  # type: ignore[no-any-return]


class DeploymentController(_WorkloadController):
    """Keeps ``spec.replicas`` Pods of the current template; reports counts and conditions."""

    name = "deployment"
    owner_gr = DEPLOYMENTS
    owner_kind = "Deployment"
    component = "deployment-controller"

    async def reconcile(self, key: Hashable) -> float | None:
        deployment = await self._owner(key)
        if deployment is None:
            return None
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        current_hash = template_hash(spec.get("template"))
        pods = await self._owned_pods(deployment)
        live = [p for p in pods if not pod_terminal(p)]
        new = [
            p
            for p in live
            if (p["metadata"].get("labels") or {}).get("pod-template-hash") == current_hash
        ]
        old = [p for p in live if p not in new]
        for pod in [p for p in pods if pod_terminal(p)]:
            await self._delete_pod(pod)
        name = deployment["metadata"]["name"]
        if not spec.get("paused"):
            for _ in range(replicas - len(new)):
                pod_name = f"{name}-{current_hash[:10]}-{generate_name_suffix()}"
                await self._create_pod(
                    deployment,
                    self._pod_from_template(
                        deployment, pod_name, {"pod-template-hash": current_hash}
                    ),
                )
            for pod in sorted(new, key=pod_ready)[: max(0, len(new) - replicas)]:
                await self._delete_pod(pod)
            ready_new = sum(1 for p in new if pod_ready(p))
            recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
            if old and (recreate or ready_new >= replicas):
                for pod in old:
                    await self._delete_pod(pod)
        pods = [p for p in await self._owned_pods(deployment) if not pod_terminal(p)]
        updated = [
            p
            for p in pods
            if (p["metadata"].get("labels") or {}).get("pod-template-hash") == current_hash
        ]
        ready = sum(1 for p in pods if pod_ready(p))
        now = format_time(self._rest.clock())
        conditions = list((deployment.get("status") or {}).get("conditions") or [])
        available = ready >= replicas
        conditions = set_condition(
            conditions,
            "Available",
            "True" if available else "False",
            reason="MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            message="Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
            now=now,
            extra={"lastUpdateTime": now},
        )
        complete = len(updated) == replicas and ready >= replicas and len(pods) == replicas
        conditions = set_condition(
            conditions,
            "Progressing",
            "True",
            reason="NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            message=f'ReplicaSet "{name}-{current_hash[:10]}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{name}-{current_hash[:10]}" is progressing.',
            now=now,
            extra={"lastUpdateTime": now},
        )
        for condition in conditions:
            previous = next(
                (
                    c
                    for c in (deployment.get("status") or {}).get("conditions") or []
                    if c.get("type") == condition["type"]
                ),
                None,
            )
            if previous and {
                k: v
                for k, v in previous.items()
                if k not in ("lastUpdateTime", "lastTransitionTime")
            } == {
                k: v
                for k, v in condition.items()
                if k not in ("lastUpdateTime", "lastTransitionTime")
            }:
                condition.update(
                    {
                        "lastUpdateTime": previous.get("lastUpdateTime", now),
                        "lastTransitionTime": previous.get("lastTransitionTime", now),
                    }
                )
        status: Obj = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        status["unavailableReplicas"] = replicas - ready if replicas > ready else None
        await self._write_status(deployment, status)
        return None


class StatefulSetController(_WorkloadController):
    """Creates ``<name>-<ordinal>`` Pods (ordered or parallel) and their claims; reports counts."""

    name = "statefulset"
    owner_gr = STATEFULSETS
    owner_kind = "StatefulSet"
    component = "statefulset-controller"

    async def _ensure_claims(self, sts: Obj, pod_name: str) -> None:
        spec = sts.get("spec") or {}
        rt = self._type(PVCS)
        for template in spec.get("volumeClaimTemplates") or []:
            claim_name = f"{(template.get('metadata') or {}).get('name', '')}-{pod_name}"
            namespace = sts["metadata"]["namespace"]
            if await self._rest.store.get(PVCS, namespace, claim_name) is not None:
                continue
            claim: Obj = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": claim_name,
                    "namespace": namespace,
                    "labels": dict((spec.get("selector") or {}).get("matchLabels") or {}),
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            retention = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get(
                "whenDeleted", "Retain"
            )
            if retention == "Delete":
                claim["metadata"]["ownerReferences"] = [
                    {**owner_reference(sts), "controller": True}
                ]
            try:
                await self._rest.create(rt, namespace, claim, WriteOptions(), self._ctx)
                await self._rest.patch(
                    rt,
                    namespace,
                    claim_name,
                    "application/merge-patch+json",
                    {
                        "status": {
                            "phase": "Bound",
                            "accessModes": claim["spec"].get("accessModes", []),
                            "capacity": (claim["spec"].get("resources") or {}).get("requests", {}),
                        }
                    },
                    options=WriteOptions(),
                    ctx=self._ctx,
                    subresource="status",
                )
            except StatusError as error:
                if error.code not in (403, 409):
                    raise

    async def reconcile(self, key: Hashable) -> float | None:
        sts = await self._owner(key)
        if sts is None:
            return None
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        replicas = int(spec.get("replicas", 1))
        start = int((spec.get("ordinals") or {}).get("start", 0))
        revision = f"{name}-{template_hash(spec.get('template'))}"
        parallel = spec.get("podManagementPolicy") == "Parallel"
        on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
        pods = {p["metadata"]["name"]: p for p in await self._owned_pods(sts)}
        wanted = [f"{name}-{i}" for i in range(start, start + replicas)]
        for pod in list(pods.values()):
            if pod["metadata"]["name"] not in wanted and (
                parallel or pod["metadata"]["name"] == max(pods, key=_ordinal)
            ):
                await self._delete_pod(pod)
                pods.pop(pod["metadata"]["name"])
                if not parallel:
                    break
        for pod_name in wanted:
            existing = pods.get(pod_name)
            if existing is not None and pod_terminal(existing):
                await self._delete_pod(existing)
                existing = None
            if existing is None:
                await self._ensure_claims(sts, pod_name)
                labels = {
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": pod_name.rsplit("-", 1)[1],
                    "controller-revision-hash": revision,
                }
                new_pod = self._pod_from_template(sts, pod_name, labels)
                new_pod["spec"]["hostname"] = pod_name
                if spec.get("serviceName"):
                    new_pod["spec"]["subdomain"] = spec["serviceName"]
                for template in spec.get("volumeClaimTemplates") or []:
                    claim = (template.get("metadata") or {}).get("name", "")
                    volumes = new_pod["spec"].setdefault("volumes", [])
                    if not any(v.get("name") == claim for v in volumes):
                        volumes.append(
                            {
                                "name": claim,
                                "persistentVolumeClaim": {"claimName": f"{claim}-{pod_name}"},
                            }
                        )
                await self._create_pod(sts, new_pod)
                if not parallel:
                    break
                continue
            if not parallel and not pod_ready(existing):
                break
        if not on_delete:
            current = [p for p in pods.values() if not pod_terminal(p)]
            outdated = [
                p
                for p in current
                if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != revision
            ]
            if (
                outdated
                and all(pod_ready(p) for p in current if p not in outdated)
                and (parallel or all(pod_ready(p) for p in current))
            ):
                await self._delete_pod(max(outdated, key=lambda p: _ordinal(p["metadata"]["name"])))
        pods_now = [p for p in await self._owned_pods(sts) if not pod_terminal(p)]
        ready = sum(1 for p in pods_now if pod_ready(p))
        updated = sum(
            1
            for p in pods_now
            if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision
        )
        await self._write_status(
            sts,
            {
                "observedGeneration": sts["metadata"].get("generation", 1),
                "replicas": len(pods_now),
                "readyReplicas": ready,
                "currentReplicas": updated,
                "updatedReplicas": updated,
                "availableReplicas": ready,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            },
        )
        return None


def _ordinal(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


class JobController(_WorkloadController):
    """Runs a Job's Pod(s) to ``completions``, retrying failures up to ``backoffLimit``."""

    name = "job"
    owner_gr = JOBS
    owner_kind = "Job"
    component = "job-controller"

    async def reconcile(self, key: Hashable) -> float | None:
        job = await self._owner(key)
        if job is None:
            return None
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        conditions = list(status.get("conditions") or [])
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in conditions
        ):
            return None
        pods = await self._owned_pods(job)
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        active = [p for p in pods if not pod_terminal(p)]
        completions = int(spec.get("completions", 1) or 1)
        parallelism = int(spec.get("parallelism", 1))
        backoff = int(spec.get("backoffLimit", 6))
        now = format_time(self._rest.clock())
        new_status: Obj = {
            "startTime": status.get("startTime") or now,
            "uncountedTerminatedPods": {},
        }
        if succeeded >= completions:
            conditions = set_condition(
                conditions,
                "SuccessCriteriaMet",
                "True",
                reason="CompletionsReached",
                message="Reached expected number of succeeded pods",
                now=now,
                extra={"lastProbeTime": now},
            )
            conditions = set_condition(
                conditions,
                "Complete",
                "True",
                reason="CompletionsReached",
                message="Reached expected number of succeeded pods",
                now=now,
                extra={"lastProbeTime": now},
            )
            new_status["completionTime"] = now
            await emit_event(
                self._rest,
                job,
                type="Normal",
                reason="Completed",
                message="Job completed",
                component=self.component,
                ctx=self._ctx,
            )
        elif failed > backoff:
            conditions = set_condition(
                conditions,
                "FailureTarget",
                "True",
                reason="BackoffLimitExceeded",
                message="Job has reached the specified backoff limit",
                now=now,
                extra={"lastProbeTime": now},
            )
            conditions = set_condition(
                conditions,
                "Failed",
                "True",
                reason="BackoffLimitExceeded",
                message="Job has reached the specified backoff limit",
                now=now,
                extra={"lastProbeTime": now},
            )
            for pod in active:
                await self._delete_pod(pod)
            active = []
            await emit_event(
                self._rest,
                job,
                type="Warning",
                reason="BackoffLimitExceeded",
                message="Job has reached the specified backoff limit",
                component=self.component,
                ctx=self._ctx,
            )
        elif not spec.get("suspend"):
            wanted = min(parallelism, completions - succeeded) - len(active)
            for _ in range(max(0, wanted)):
                name = f"{job['metadata']['name']}-{generate_name_suffix()}"
                await self._create_pod(job, self._pod_from_template(job, name, {}))
            active = [p for p in await self._owned_pods(job) if not pod_terminal(p)]
        new_status.update(
            {
                "active": len(active) or None,
                "succeeded": succeeded or None,
                "failed": failed or None,
                "ready": sum(1 for p in active if pod_ready(p)),
                "terminating": 0,
            }
        )
        if conditions:
            new_status["conditions"] = conditions
        await self._write_status(job, new_status)
        return None
