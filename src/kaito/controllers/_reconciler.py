"""The Workspace reconciler: nodes, then the inference workload or the tuning Job, then status.

Controller layer. Level-triggered and idempotent: each pass reads the cache, converges what is
missing or stale, and recomputes the status from what it observed. Interrupted at any await
point and run again (or by a restarted manager), it converges to the same state with no
duplicate nodes and no orphans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import structlog

from kaito.api import check_decoded, runtime_of, unstructure
from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace, WorkspaceStatus
from kaito.catalog import SKU as CatalogSKU
from kaito.catalog import Preset
from kaito.controllers._apply import WorkspaceClient, ensure_object
from kaito.controllers._config import WorkspaceConfigs
from kaito.controllers._decode import DecodedWorkspace, WorkspaceDecoder
from kaito.controllers._events import WORKLOAD_CREATED, WORKLOAD_UPDATED, record_transitions
from kaito.controllers._finalizer import Finalizer, has_finalizer
from kaito.controllers._inference_objects import (
    InferencePlan,
    inference_config_map,
    inference_services,
    inference_statefulset,
)
from kaito.controllers._nodes import ensure_nodes, gpu_config_of_nodes
from kaito.controllers._observe import (
    UNMANAGED_INDEX,
    WORKSPACE_INDEX,
    observe_job,
    observe_workload,
    progress_pod_ip,
    workspace_index_key,
)
from kaito.controllers._owned import INFERENCE_SET, TUNING_JOB
from kaito.controllers._plan import target_node_count
from kaito.controllers._pod_health import PodProblem
from kaito.controllers._progress import ProgressReader
from kaito.controllers._resources import CONFIG_MAPS, JOBS, SERVICES, STATEFUL_SETS, WORKSPACES
from kaito.controllers._revisions import REVISION_INDEX, sync_revision
from kaito.controllers._settings import ControllerSettings, validation_context
from kaito.controllers._status import (
    JobObservation,
    NodeObservation,
    WorkloadObservation,
    compute_status,
    invalid_status,
    status_patch,
)
from kaito.controllers._template_objects import template_statefulset
from kaito.controllers._tuning_objects import TuningPlan, training_config_map, tuning_job
from kaito.engine import ApiError, EventRecorder, ObjectKey, Result, Store, TerminalError
from kaito_provisioners import NodeProvisioner

__all__ = ("NODE_POLL_SECONDS", "PROGRESS_POLL_SECONDS", "WorkspaceCaches", "WorkspaceReconciler")

log = structlog.get_logger(__name__)

NODE_POLL_SECONDS: Final = 2.0
MIN_NODE_POLL_SECONDS: Final = 0.05
PROGRESS_POLL_SECONDS: Final = 15.0
_MAX_VALIDATED: Final = 4096
#: InferenceReady's reason when the API server refuses the user's ``inference.template``.
INVALID_TEMPLATE: Final = "InvalidInferenceTemplate"


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
    #: The Workspaces' ControllerRevisions, indexed by :data:`REVISION_INDEX`.
    revisions: Store


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
        decoder: WorkspaceDecoder | None = None,
    ) -> None:
        self.progress_reader = progress_reader
        self.client = client
        self.caches = caches
        self.provisioner = provisioner if settings.node_auto_provisioning else None
        self.events = events
        self.settings = settings
        self.now = now
        self.configs = WorkspaceConfigs(caches.config_maps, settings)
        self.finalizer = Finalizer(client, self.provisioner, events)
        self.decoder = decoder if decoder is not None else WorkspaceDecoder()
        self._validated: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.validation = validation_context(settings)

    async def reconcile(self, key: ObjectKey) -> Result:
        """One pass over the Workspace ``key``."""
        raw = self.caches.workspaces.get(key)
        if raw is None:
            return Result()  # deleted; its finalizer already cleaned up
        decoded = self.decoder.decode(raw)
        ws = decoded.workspace
        if ws.metadata.deletion_timestamp:
            await self.finalizer.finalize(raw, ws, key, now=self.now())
            self.decoder.forget(ws.metadata.uid or "")
            return Result()
        if not has_finalizer(ws):
            await self.finalizer.add(raw, key)
        problems = self._problems(decoded)
        if problems:
            await self._write_status(raw, ws, invalid_status(ws, problems, now=self.now()))
            raise TerminalError(f"workspace {key} is invalid: {problems[0]}")
        revision = await sync_revision(
            self.client,
            ws,
            self.caches.revisions.by_index(
                REVISION_INDEX, workspace_index_key(key.namespace, key.name)
            ),
            hash_=decoded.spec_hash(),
        )
        preset = self._preset(ws)
        sku = self.validation.skus.get(ws.resource.instance_type or "") if ws.resource else None
        target = self._target_nodes(ws, preset, sku)
        byo = self.caches.nodes.by_index(UNMANAGED_INDEX, "byo")
        nodes = await ensure_nodes(
            ws,
            target,
            byo,
            self.provisioner,
            disk_gib=preset.disk if preset else 1024.0,
            provisioned=self.caches.nodes.by_index(
                WORKSPACE_INDEX, workspace_index_key(key.namespace, key.name)
            ),
        )
        if sku is None and self.provisioner is None:
            # Bring-your-own nodes: their GPUs from their labels, as upstream reads them.
            ready = set(nodes.ready_nodes)
            sku = gpu_config_of_nodes(
                n for n in byo if (n.get("metadata") or {}).get("name") in ready
            )
        if ws.inference is not None:
            workload = await self._ensure_inference(
                decoded, preset, sku, target=target, nodes=nodes, revision=revision
            )
            status = compute_status(ws, nodes, now=self.now(), workload=workload)
        else:
            job = await self._ensure_tuning(decoded, preset, sku, nodes, revision=revision)
            status = compute_status(ws, nodes, now=self.now(), job=job)
        await self._write_status(raw, ws, status)
        if not nodes.ready:
            # The provisioner's cadence if it gave one (ARM's Retry-After, its polling), else ours.
            wait = NODE_POLL_SECONDS if nodes.retry_after is None else nodes.retry_after
            return Result(requeue_after=max(MIN_NODE_POLL_SECONDS, wait))
        if ws.tuning is not None and status.state == c.WorkspaceState.RUNNING:
            return Result(requeue_after=PROGRESS_POLL_SECONDS)  # refresh the progress line
        return Result()

    # -- admission ----------------------------------------------------------------------------

    def _problems(self, decoded: DecodedWorkspace) -> tuple[Any, ...]:
        """Admission problems of this generation (validated once; referenced ConfigMaps change
        the verdict too, so their data takes part in the cache key)."""
        ws = decoded.workspace
        refs = tuple(sorted((k, str(v)) for k, v in (self.configs.referenced(ws) or {}).items()))
        cache_key = (ws.metadata.uid, ws.metadata.generation, refs)
        cached = self._validated.get(cache_key)
        if cached is not None:
            return cached
        context = self.configs.validation_for(ws, self.validation)
        cached = check_decoded(decoded.checked, context).errors
        if len(self._validated) > _MAX_VALIDATED:
            self._validated.clear()
        self._validated[cache_key] = cached
        return cached

    # -- plan ---------------------------------------------------------------------------------

    def _preset(self, ws: Workspace) -> Preset | None:
        spec = ws.inference.preset if ws.inference else (ws.tuning.preset if ws.tuning else None)
        return self.validation.presets.get(spec.name) if spec else None

    def _target_nodes(self, ws: Workspace, preset: Preset | None, sku: CatalogSKU | None) -> int:
        return target_node_count(
            ws,
            preset,
            sku,
            runtime=runtime_of(ws, self.validation),
            node_auto_provisioning=self.settings.node_auto_provisioning,
            max_model_len=self.configs.max_model_len(ws),
        )

    async def _ensure_config_map(self, config_map: dict[str, Any]) -> None:
        meta = config_map["metadata"]
        current = self.caches.config_maps.get(ObjectKey(meta["namespace"], meta["name"]))
        await ensure_object(self.client, CONFIG_MAPS, config_map, current, fields=("data",))

    # -- inference ----------------------------------------------------------------------------

    async def _ensure_inference(
        self,
        decoded: DecodedWorkspace,
        preset: Preset | None,
        sku: CatalogSKU | None,
        *,
        target: int,
        nodes: NodeObservation,
        revision: str,
    ) -> WorkloadObservation:
        ws, raw = decoded.workspace, decoded.raw
        assert ws.inference is not None
        namespace, name = ws.metadata.namespace or "default", ws.metadata.name or ""
        for service in inference_services(ws, self.settings):
            current = self.caches.services.get(ObjectKey(namespace, service["metadata"]["name"]))
            await ensure_object(self.client, SERVICES, service, current, fields=())
        if ws.inference.template is not None:
            desired = template_statefulset(
                ws, replicas=target, revision=revision, settings=self.settings
            )
        else:
            config_text = self.configs.inference_config(ws)
            model = (
                preset.model_id
                if preset
                else (ws.inference.preset.name if ws.inference.preset else "")
            )
            plan = InferencePlan(
                preset=preset,
                model_id=model,
                sku=sku,
                node_count=target,
                runtime=runtime_of(ws, self.validation),
                config_text=config_text,
                revision=revision,
            )
            await self._ensure_config_map(inference_config_map(ws, plan))
            desired = inference_statefulset(ws, plan, self.settings)
        if not nodes.ready:
            return WorkloadObservation(exists=False)
        set_key = INFERENCE_SET.key(namespace, name)
        current = self.caches.stateful_sets.get(set_key)
        if current is not None and _selector(current) != _selector(desired):
            # The selector is immutable: a StatefulSet from an older rendering is replaced.
            await self.client.delete(STATEFUL_SETS, set_key)
            await self.events.event(
                dict(raw), WORKLOAD_UPDATED, f"replacing StatefulSet {set_key.name}: new selector"
            )
            return WorkloadObservation(exists=False)
        try:
            outcome = await ensure_object(self.client, STATEFUL_SETS, desired, current)
        except ApiError as err:
            if err.status != 422 or ws.inference.template is None:
                raise
            # The user's pod template is schemaless: the API server is the one to judge it.
            return WorkloadObservation(
                exists=current is not None,
                replicas=target,
                problem=PodProblem(
                    INVALID_TEMPLATE,
                    f"the API server refused the StatefulSet of inference.template: "
                    f"{err.message}; fix inference.template",
                ),
            )
        if outcome == "created":
            await self.events.event(
                dict(raw), WORKLOAD_CREATED, f"created StatefulSet {set_key.name}"
            )
        elif outcome == "updated":
            await self.events.event(
                dict(raw),
                WORKLOAD_UPDATED,
                f"rolled StatefulSet {set_key.name} to revision {revision}",
            )
        return observe_workload(
            current,
            self.caches.pods.by_index(WORKSPACE_INDEX, workspace_index_key(namespace, name)),
            replicas=target,
            changed=outcome != "unchanged",
        )

    # -- tuning -------------------------------------------------------------------------------

    async def _ensure_tuning(
        self,
        decoded: DecodedWorkspace,
        preset: Preset | None,
        sku: CatalogSKU | None,
        nodes: NodeObservation,
        *,
        revision: str,
    ) -> JobObservation:
        ws, raw = decoded.workspace, decoded.raw
        assert ws.tuning is not None
        if preset is None:
            raise TerminalError(f"tuning preset {ws.tuning.preset!r} is not in the catalog")
        namespace, name = ws.metadata.namespace or "default", ws.metadata.name or ""
        config_text = self.configs.training_config(ws)
        plan = TuningPlan(preset=preset, sku=sku, config_text=config_text, revision=revision)
        await self._ensure_config_map(training_config_map(ws, plan))
        if not nodes.ready:
            return JobObservation(exists=False)
        job_key = TUNING_JOB.key(namespace, name)
        current = self.caches.jobs.get(job_key)
        if current is not None:
            job_revision = ((current.get("metadata") or {}).get("annotations") or {}).get(
                c.ANNOTATION_REVISION
            )
            if job_revision != plan.revision:
                # A Job's pod template is immutable: replace the Job (upstream does the same).
                await self.client.delete(JOBS, job_key)
                await self.events.event(
                    dict(raw), WORKLOAD_UPDATED, f"replacing Job {job_key.name} for the new spec"
                )
                return JobObservation(exists=False)
            pods = self.caches.pods.by_index(WORKSPACE_INDEX, workspace_index_key(namespace, name))
            observed = observe_job(current, pods)
            if observed.active and self.progress_reader is not None:
                pod_ip = progress_pod_ip(pods)
                progress = await self.progress_reader(pod_ip) if pod_ip else None
                observed = attrs.evolve(observed, progress=progress)
            return observed
        outcome = await ensure_object(self.client, JOBS, tuning_job(ws, plan, self.settings), None)
        if outcome == "created":
            await self.events.event(
                dict(raw), WORKLOAD_CREATED, f"created tuning Job {job_key.name}"
            )
        return JobObservation(exists=True)

    # -- status -------------------------------------------------------------------------------

    async def _write_status(
        self, raw: Mapping[str, Any], ws: Workspace, status: WorkspaceStatus
    ) -> None:
        old = (raw.get("status") or {}) if isinstance(raw.get("status"), dict) else {}
        patch = status_patch(old, unstructure(status))
        if patch is None:
            return
        key = ObjectKey(ws.metadata.namespace or "", ws.metadata.name or "")
        await self.client.patch_status(WORKSPACES, key, patch)
        await record_transitions(
            self.events, raw, ws.status.conditions if ws.status else None, status.conditions
        )


def _selector(obj: Mapping[str, Any]) -> Any:
    return ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
