"""The Workspace reconciler: nodes, then the inference workload or the tuning Job, then status.

Controller layer. Level-triggered and idempotent: each pass reads the cache, converges what is
missing or stale, and recomputes the status from what it observed. Interrupted at any await
point and run again (or by a restarted manager), it converges to the same state with no
duplicate nodes and no orphans.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import attrs
import structlog
import yaml

from kaito.api import (
    ValidationContext,
    check_workspace,
    default_template,
    structure_lenient,
    unstructure,
)
from kaito.api import (
    constants as c,
)
from kaito.api.conditions import find_condition, set_condition
from kaito.api.meta import Condition
from kaito.api.v1beta1 import Workspace, WorkspaceStatus
from kaito.api.validation import runtime_of
from kaito.catalog import SKU as CatalogSKU
from kaito.catalog import Preset, estimate_node_count
from kaito.controllers.apply import WorkspaceClient, ensure_object
from kaito.controllers.inference_objects import (
    InferencePlan,
    inference_config_map,
    inference_services,
    inference_statefulset,
    merge_inference_config,
)
from kaito.controllers.naming import revision_hash
from kaito.controllers.nodes import ensure_nodes
from kaito.controllers.pod_health import diagnose_pods
from kaito.controllers.progress import ProgressReader
from kaito.controllers.resources import (
    CONFIG_MAPS,
    JOBS,
    SERVICES,
    STATEFUL_SETS,
    WORKSPACES,
)
from kaito.controllers.settings import ControllerSettings
from kaito.controllers.status import (
    JobObservation,
    NodeObservation,
    WorkloadObservation,
    compute_status,
)
from kaito.controllers.tuning_objects import TuningPlan, training_config_map, tuning_job
from kaito.engine import ApiError, EventRecorder, ObjectKey, Result, Store, TerminalError
from kaito_provisioners import NodeProvisioner
from kaito_provisioners import reasons as provisioning

#: Provisioning reasons that are a problem (a Warning Event), not progress.
PROVISIONING_PROBLEMS: Final = frozenset(provisioning.FIXES) - {
    provisioning.NODE_CLAIM_NOT_READY,
    provisioning.NODE_NOT_READY,
    provisioning.NODE_PLUGINS_NOT_READY,
    provisioning.NODES_DELETING,
}

__all__ = ("WorkspaceCaches", "WorkspaceReconciler")

log = structlog.get_logger(__name__)

NODE_POLL_SECONDS: Final = 2.0
MIN_NODE_POLL_SECONDS: Final = 0.05
PROGRESS_POLL_SECONDS: Final = 15.0
#: Store index of pods and nodes by the ``namespace/name`` of the Workspace they belong to.
WORKSPACE_INDEX: Final = "workspace"
#: Store index of nodes KAITO did not provision (bring-your-own candidates), under "byo".
UNMANAGED_INDEX: Final = "unmanaged"


def index_by_workspace(obj: Mapping[str, Any]) -> list[str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name = labels.get(c.LABEL_WORKSPACE)
    if not name:
        return []
    namespace = labels.get(c.LABEL_WORKSPACE_NAMESPACE) or (obj.get("metadata") or {}).get(
        "namespace", ""
    )
    return [f"{namespace}/{name}"]


def index_unmanaged_nodes(obj: Mapping[str, Any]) -> list[str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if c.LABEL_NODEPOOL in labels or c.LABEL_WORKSPACE in labels:
        return []
    return ["byo"]


_WARNING_REASONS: Final = frozenset(
    {
        c.Reason.IMAGE_PULL_ERROR,
        c.Reason.CRASH_LOOP_BACK_OFF,
        c.Reason.OOM_KILLED,
        c.Reason.CONTAINER_START_ERROR,
        c.Reason.POD_EVICTED,
        c.Reason.NODE_DISK_PRESSURE,
        c.Reason.NODE_MEMORY_PRESSURE,
        c.Reason.UNSCHEDULABLE,
        c.Reason.TUNING_FAILED,
        c.Reason.FAILED,
        "InvalidWorkspace",
        "NodeNotReady",
        *PROVISIONING_PROBLEMS,
    }
)


@attrs.frozen
class WorkspaceCaches:
    """The informer stores the reconciler reads (kept current by the manager's informers)."""

    workspaces: Store
    nodes: Store
    pods: Store
    stateful_sets: Store
    jobs: Store
    services: Store
    config_maps: Store


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WorkspaceReconciler:
    """Reconciles Workspaces; ``reconcile`` is the engine's reconcile function."""

    def __init__(
        self,
        client: WorkspaceClient,
        caches: WorkspaceCaches,
        provisioner: NodeProvisioner | None,
        events: EventRecorder,
        settings: ControllerSettings,
        *,
        now: Callable[[], str] = _now,
        progress_reader: ProgressReader | None = None,
    ) -> None:
        self.progress_reader = progress_reader
        self.client = client
        self.caches = caches
        self.provisioner = provisioner if settings.node_auto_provisioning else None
        self.events = events
        self.settings = settings
        self.now = now
        self._validated: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.validation = ValidationContext(
            node_auto_provisioning=settings.node_auto_provisioning,
            vllm_enabled=settings.vllm_enabled,
            cloud=settings.cloud,
            release_namespace=settings.release_namespace,
            allow_local_urls=settings.allow_local_urls,
        )

    # -- the pass ---------------------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        """One pass over the Workspace ``key``."""
        raw = self.caches.workspaces.get(key)
        if raw is None:
            return Result()  # deleted; its finalizer already cleaned up
        ws, _ = structure_lenient(raw, Workspace)
        if ws.metadata.deletion_timestamp:
            await self._finalize(raw, ws, key)
            return Result()
        if c.WORKSPACE_FINALIZER not in (ws.metadata.finalizers or ()):
            await self._add_finalizer(raw, key)
        problems = self._problems(raw, ws)
        if problems:
            await self._write_status(raw, ws, self._invalid_status(ws, problems))
            raise TerminalError(f"workspace {key} is invalid: {problems[0]}")
        preset = self._preset(ws)
        sku = self.validation.skus.get(ws.resource.instance_type or "") if ws.resource else None
        target = self._target_nodes(ws, preset, sku)
        nodes = await ensure_nodes(
            ws,
            target,
            self.caches.nodes.by_index(UNMANAGED_INDEX, "byo"),
            self.provisioner,
            disk_gib=preset.disk if preset else 1024.0,
            provisioned=self.caches.nodes.by_index(WORKSPACE_INDEX, f"{key.namespace}/{key.name}"),
        )
        if ws.inference is not None:
            workload = await self._ensure_inference(ws, preset, sku, target, nodes)
            status = compute_status(ws, nodes, now=self.now(), workload=workload)
        else:
            job = await self._ensure_tuning(ws, preset, sku, nodes)
            status = compute_status(ws, nodes, now=self.now(), job=job)
        await self._write_status(raw, ws, status)
        if not nodes.ready:
            # The provisioner's cadence if it gave one (ARM's Retry-After, its polling), else ours.
            wait = NODE_POLL_SECONDS if nodes.retry_after is None else nodes.retry_after
            return Result(requeue_after=max(MIN_NODE_POLL_SECONDS, wait))
        if ws.tuning is not None and status.state == c.WorkspaceState.RUNNING:
            return Result(requeue_after=PROGRESS_POLL_SECONDS)  # refresh the progress line
        return Result()

    def _problems(self, raw: Mapping[str, Any], ws: Workspace) -> tuple[Any, ...]:
        """Admission problems of this generation (validated once; referenced ConfigMaps change
        the verdict too, so their data takes part in the cache key)."""
        refs = tuple(sorted((k, str(v)) for k, v in (self._config_ref_data(ws) or {}).items()))
        cache_key = (ws.metadata.uid, ws.metadata.generation, refs)
        cached = self._validated.get(cache_key)
        if cached is not None:
            return cached
        cached = check_workspace(raw, self._validation_for(ws)).errors
        if len(self._validated) > 4096:
            self._validated.clear()
        self._validated[cache_key] = cached
        return cached

    def _config_ref_data(self, ws: Workspace) -> Mapping[str, str] | None:
        section = ws.inference or ws.tuning
        if section is None or not section.config:
            return None
        return self._config_data(ws.metadata.namespace or "default", section.config)

    def _validation_for(self, ws: Workspace) -> ValidationContext:
        section = ws.inference or ws.tuning
        if section is None or not section.config:
            return self.validation
        namespace = ws.metadata.namespace or "default"
        data = self._config_data(namespace, section.config)
        config_maps = {} if data is None else {(namespace, section.config): dict(data)}
        return attrs.evolve(self.validation, config_maps=config_maps)

    # -- plan -------------------------------------------------------------------------------

    def _preset(self, ws: Workspace) -> Preset | None:
        spec = ws.inference.preset if ws.inference else (ws.tuning.preset if ws.tuning else None)
        return self.validation.presets.get(spec.name) if spec else None

    def _max_model_len(self, ws: Workspace) -> int | None:
        return _max_model_len(self._inference_config(ws))

    def _target_nodes(self, ws: Workspace, preset: Preset | None, sku: CatalogSKU | None) -> int:
        """``status.targetNodeCount`` once set; else the estimator (vLLM) or ``resource.count``."""
        if ws.status and ws.status.target_node_count:
            return ws.status.target_node_count
        count = (ws.resource.count if ws.resource else None) or 1
        if (
            ws.inference is not None
            and preset is not None
            and sku is not None
            and runtime_of(ws, self.validation) == c.RuntimeName.VLLM
            and self.settings.node_auto_provisioning
        ):
            estimate = estimate_node_count(
                preset, sku, max_model_len=self._max_model_len(ws) or 2048
            )
            return estimate or count
        return count

    def _config_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        cached = self.caches.config_maps.get(ObjectKey(namespace, name))
        if cached is not None:
            return cached.get("data") or {}
        if namespace == self.settings.release_namespace:
            return default_template(name)
        return None

    def _inference_config(self, ws: Workspace) -> str:
        defaults = self._config_data(
            self.settings.release_namespace, c.DEFAULT_INFERENCE_CONFIG_TEMPLATE
        )
        default_text = (defaults or {}).get(c.INFERENCE_CONFIG_KEY, "")
        user = None
        if ws.inference and ws.inference.config:
            data = self._config_data(ws.metadata.namespace or "default", ws.inference.config) or {}
            user = data.get(c.INFERENCE_CONFIG_KEY)
        return _merged_config(default_text, user)

    def _training_config(self, ws: Workspace) -> str:
        assert ws.tuning is not None
        if ws.tuning.config:
            data = self._config_data(ws.metadata.namespace or "default", ws.tuning.config)
        else:
            template = (
                c.DEFAULT_QLORA_CONFIG_TEMPLATE
                if ws.tuning.method == "qlora"
                else c.DEFAULT_LORA_CONFIG_TEMPLATE
            )
            data = self._config_data(self.settings.release_namespace, template)
            return _download_at_runtime((data or {}).get(c.TUNING_CONFIG_KEY, ""))
        return (data or {}).get(c.TUNING_CONFIG_KEY, "")

    async def _ensure_config_map(self, config_map: dict[str, Any]) -> None:
        meta = config_map["metadata"]
        current = self.caches.config_maps.get(ObjectKey(meta["namespace"], meta["name"]))
        await ensure_object(self.client, CONFIG_MAPS, config_map, current, fields=("data",))

    # -- inference ----------------------------------------------------------------------------

    async def _ensure_inference(
        self,
        ws: Workspace,
        preset: Preset | None,
        sku: CatalogSKU | None,
        target: int,
        nodes: NodeObservation,
    ) -> WorkloadObservation:
        assert ws.inference is not None
        namespace, name = ws.metadata.namespace or "default", ws.metadata.name or ""
        for service in inference_services(ws, self.settings):
            current = self.caches.services.get(ObjectKey(namespace, service["metadata"]["name"]))
            await ensure_object(self.client, SERVICES, service, current, fields=())
        config_text = self._inference_config(ws)
        runtime = runtime_of(ws, self.validation)
        model = (
            preset.model_id if preset else (ws.inference.preset.name if ws.inference.preset else "")
        )
        plan = InferencePlan(
            preset=preset,
            model_id=model,
            sku=sku,
            node_count=target,
            runtime=runtime,
            config_text=config_text,
            revision=revision_hash(ws, config_text, self.settings.runtime_image),
        )
        await self._ensure_config_map(inference_config_map(ws, plan))
        if not nodes.ready:
            return WorkloadObservation(exists=False)
        desired = inference_statefulset(ws, plan, self.settings)
        current = self.caches.stateful_sets.get(ObjectKey(namespace, name))
        outcome = await ensure_object(self.client, STATEFUL_SETS, desired, current)
        raw = unstructure(ws)
        if outcome == "created":
            await self.events.event(raw, "WorkloadCreated", f"created StatefulSet {name}")
        elif outcome == "updated":
            await self.events.event(
                raw, "WorkloadUpdated", f"rolled StatefulSet {name} to the new spec"
            )
        status = (current or {}).get("status") or {}
        pods = self.caches.pods.by_index(WORKSPACE_INDEX, f"{namespace}/{name}")
        nodes_by_name = {
            pod_node: node
            for pod in pods
            if (pod_node := (pod.get("spec") or {}).get("nodeName"))
            and (node := self.caches.nodes.get(ObjectKey("", pod_node))) is not None
        }
        return WorkloadObservation(
            exists=current is not None,
            replicas=target,
            ready_replicas=int(status.get("readyReplicas") or 0) if outcome == "unchanged" else 0,
            problem=diagnose_pods(pods, nodes_by_name),
        )

    # -- tuning -------------------------------------------------------------------------------

    async def _ensure_tuning(
        self, ws: Workspace, preset: Preset | None, sku: CatalogSKU | None, nodes: NodeObservation
    ) -> JobObservation:
        assert ws.tuning is not None
        if preset is None:
            raise TerminalError(f"tuning preset {ws.tuning.preset!r} is not in the catalog")
        namespace, name = ws.metadata.namespace or "default", ws.metadata.name or ""
        config_text = self._training_config(ws)
        plan = TuningPlan(
            preset=preset,
            sku=sku,
            config_text=config_text,
            revision=revision_hash(ws, config_text, self.settings.runtime_image),
        )
        await self._ensure_config_map(training_config_map(ws, plan))
        if not nodes.ready:
            return JobObservation(exists=False)
        current = self.caches.jobs.get(ObjectKey(namespace, name))
        raw = unstructure(ws)
        if current is not None:
            revision = ((current.get("metadata") or {}).get("annotations") or {}).get(
                c.ANNOTATION_REVISION
            )
            if revision != plan.revision:
                # A Job's pod template is immutable: replace the Job (upstream does the same).
                await self.client.delete(JOBS, ObjectKey(namespace, name))
                await self.events.event(
                    raw, "WorkloadUpdated", f"replacing Job {name} for the new spec"
                )
                return JobObservation(exists=False)
            observed = self._observe_job(ws, current)
            if observed.active and self.progress_reader is not None:
                observed = attrs.evolve(observed, progress=await self._progress(ws))
            return observed
        outcome = await ensure_object(self.client, JOBS, tuning_job(ws, plan, self.settings), None)
        if outcome == "created":
            await self.events.event(raw, "WorkloadCreated", f"created tuning Job {name}")
        return JobObservation(exists=True)

    async def _progress(self, ws: Workspace) -> str | None:
        assert self.progress_reader is not None
        key = f"{ws.metadata.namespace or 'default'}/{ws.metadata.name}"
        for pod in self.caches.pods.by_index(WORKSPACE_INDEX, key):
            status = pod.get("status") or {}
            if status.get("phase") == "Running" and status.get("podIP"):
                return await self.progress_reader(str(status["podIP"]))
        return None

    def _observe_job(self, ws: Workspace, job: Mapping[str, Any]) -> JobObservation:
        status = job.get("status") or {}
        pods = self.caches.pods.by_index(
            WORKSPACE_INDEX, f"{ws.metadata.namespace or 'default'}/{ws.metadata.name}"
        )
        failed = next(
            (
                cond
                for cond in status.get("conditions") or ()
                if cond.get("type") == "Failed" and cond.get("status") == "True"
            ),
            None,
        )
        failed_reason = failed.get("reason", "Failed") if failed else None
        failed_message = ""
        if failed:
            detail = _termination_message(pods)
            failed_message = f"tuning Job failed ({failed_reason}): {failed.get('message', '')}"
            if detail:
                failed_message += f"; {detail}"
        return JobObservation(
            exists=True,
            active=int(status.get("active") or 0),
            ready=int(status.get("ready") or 0),
            succeeded=int(status.get("succeeded") or 0),
            failed_reason=failed_reason,
            failed_message=failed_message.strip(),
            problem=None if failed or status.get("succeeded") else diagnose_pods(pods),
        )

    # -- finalizer and status -------------------------------------------------------------

    async def _add_finalizer(self, raw: Mapping[str, Any], key: ObjectKey) -> None:
        meta = raw.get("metadata") or {}
        finalizers = [*(meta.get("finalizers") or ()), c.WORKSPACE_FINALIZER]
        await self.client.patch(
            WORKSPACES,
            key,
            {
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": meta.get("resourceVersion"),
                }
            },
        )

    async def _finalize(self, raw: Mapping[str, Any], ws: Workspace, key: ObjectKey) -> None:
        """Delete the provisioned nodes and owned objects, then let the Workspace go."""
        finalizers = list(ws.metadata.finalizers or ())
        if c.WORKSPACE_FINALIZER not in finalizers:
            return
        namespace, name = key.namespace, key.name
        for resource, object_name in (
            (STATEFUL_SETS, name),
            (JOBS, name),
            (SERVICES, name),
            (SERVICES, f"{name}-headless"),
            (CONFIG_MAPS, f"{name}-inference-params"),
            (CONFIG_MAPS, f"{name}-training-params"),
        ):
            await self.client.delete(resource, ObjectKey(namespace, object_name))
        if self.provisioner is not None:
            await self.provisioner.release(namespace, name)
        conditions = set_condition(
            (ws.status.conditions if ws.status else None),
            Condition(
                type=c.ConditionType.WORKSPACE_DELETING,
                status="True",
                reason=c.Reason.DELETED,
                message="the workspace's nodes and workloads are deleted",
                observed_generation=ws.metadata.generation,
                last_transition_time=self.now(),
            ),
        )
        try:
            await self.client.patch_status(WORKSPACES, key, {"conditions": unstructure(conditions)})
        except ApiError as err:
            if not err.not_found:
                raise
        await self.events.event(dict(raw), "WorkspaceDeleted", "deleted nodes and workloads")
        finalizers.remove(c.WORKSPACE_FINALIZER)
        meta = raw.get("metadata") or {}
        try:
            await self.client.patch(
                WORKSPACES,
                key,
                {
                    "metadata": {
                        "finalizers": finalizers or None,
                        "resourceVersion": meta.get("resourceVersion"),
                    }
                },
            )
        except ApiError as err:
            if err.conflict:
                refreshed = await self.client.get(WORKSPACES, key)
                remaining = [
                    f
                    for f in (refreshed.get("metadata") or {}).get("finalizers") or ()
                    if f != c.WORKSPACE_FINALIZER
                ]
                await self.client.patch(
                    WORKSPACES, key, {"metadata": {"finalizers": remaining or None}}
                )
            elif not err.not_found:
                raise
        log.info("workspace_finalized", workspace=name, namespace=namespace)

    def _invalid_status(self, ws: Workspace, problems: tuple[Any, ...]) -> WorkspaceStatus:
        message = "; ".join(str(p) for p in problems)[:2000]
        old = ws.status or WorkspaceStatus()
        conds = tuple(old.conditions or ())
        for type_ in (c.ConditionType.WORKSPACE_SUCCEEDED, c.ConditionType.WORKSPACE_READY):
            conds = set_condition(
                conds,
                Condition(
                    type=type_,
                    status="False",
                    reason="InvalidWorkspace",
                    message=message,
                    observed_generation=ws.metadata.generation,
                    last_transition_time=self.now(),
                ),
            )
        return WorkspaceStatus(
            worker_nodes=old.worker_nodes,
            state=c.WorkspaceState.FAILED if ws.tuning else c.WorkspaceState.PENDING,
            conditions=conds,
            target_node_count=old.target_node_count,
            performance=old.performance,
        )

    async def _write_status(
        self, raw: Mapping[str, Any], ws: Workspace, status: WorkspaceStatus
    ) -> None:
        old = (raw.get("status") or {}) if isinstance(raw.get("status"), dict) else {}
        new = unstructure(status)
        if _same_status(old, new):
            return
        patch = {k: new.get(k) for k in set(old) | set(new)}
        key = ObjectKey(ws.metadata.namespace or "", ws.metadata.name or "")
        await self.client.patch_status(WORKSPACES, key, patch)
        await self._transition_events(raw, ws, status)

    async def _transition_events(
        self, raw: Mapping[str, Any], ws: Workspace, status: WorkspaceStatus
    ) -> None:
        before = ws.status.conditions if ws.status else None
        for cond in status.conditions or ():
            if cond.type == c.ConditionType.WORKSPACE_READY:
                continue  # the same truth as WorkspaceSucceeded: one event is enough
            old = find_condition(before, cond.type)
            if old is not None and (old.status, old.reason) == (cond.status, cond.reason):
                continue
            if (
                cond.status != "True"
                and cond.reason
                in (
                    c.Reason.INFERENCE_PENDING,
                    c.Reason.PENDING,
                    c.Reason.TUNING_PENDING,
                    c.Reason.RESOURCE_NOT_READY,
                )
                and old is None
            ):
                continue  # the first pending state of a new workspace is not news
            warn = cond.reason in _WARNING_REASONS and cond.type != c.ConditionType.NODES_READY
            kind: Literal["Normal", "Warning"] = "Warning" if warn else "Normal"
            await self.events.event(
                dict(raw), f"{cond.type}{'True' if cond.status == 'True' else 'False'}",
                f"{cond.reason}: {cond.message}", type=kind,
            )  # fmt: skip


@functools.lru_cache(maxsize=256)
def _merged_config(default_text: str, user_text: str | None) -> str:
    return merge_inference_config(default_text, user_text)


@functools.lru_cache(maxsize=256)
def _max_model_len(config_text: str) -> int | None:
    try:
        return int(str((yaml.safe_load(config_text) or {}).get("vllm", {}).get("max-model-len")))
    except (ValueError, TypeError, AttributeError, yaml.YAMLError):
        return None


@functools.lru_cache(maxsize=64)
def _download_at_runtime(config_text: str) -> str:
    """The default template with ``local_files_only: false``: our Jobs download the weights.

    Upstream bakes weights into preset images, so its template reads local files only; here the
    tuning container fetches the model into the weights volume. A user's ConfigMap is kept as is.
    """
    config = yaml.safe_load(config_text) or {}
    model = config.setdefault("training_config", {}).setdefault("ModelConfig", {})
    model["local_files_only"] = False
    return yaml.safe_dump(config, sort_keys=False)


def _termination_message(pods: list[dict[str, Any]]) -> str:
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or ():
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") not in (None, 0) and terminated.get("message"):
                return f"container {cs.get('name')}: {str(terminated['message']).strip()}"
    return ""


def _same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return {k: v for k, v in old.items() if v is not None} == {
        k: v for k, v in new.items() if v is not None
    }
