"""The Workspace controller: nodes, the inference workload or the tuning Job, and the status.

Controller layer: built on ``kaito.engine``, ``kaito.api`` and the ``NodeProvisioner`` Protocol
(never a provisioner backend). One module per concern: the pass (``_reconciler``), parameter
resolution (``_config``), observation of pods and Jobs (``_observe``), Events (``_events``), the
finalizer (``_finalizer``), the renderers (``_inference_objects``, ``_template_objects``,
``_tuning_objects``, from the pieces in ``_pod_parts`` and vLLM's ``_parallelism``), the revision
history (``_revisions``), and the table of owned kinds (``_owned``) that the renderers, the
finalizer and the watches read.
"""

from __future__ import annotations

from kaito.controllers._decode import DEFAULT_DECODE_CACHE_SIZE, DecodedWorkspace, WorkspaceDecoder
from kaito.controllers._events import WARNING_REASONS, transition_events
from kaito.controllers._inference_objects import (
    InferencePlan,
    inference_config_map,
    inference_services,
    inference_statefulset,
    merge_inference_config,
    served_model_name,
    server_command,
)
from kaito.controllers._naming import (
    controller_owner_reference,
    revision_hash,
    workspace_labels,
)
from kaito.controllers._nodes import ensure_nodes, node_request
from kaito.controllers._observe import observe_job, observe_workload
from kaito.controllers._owned import (
    HEADLESS_SERVICE,
    INFERENCE_PARAMS,
    INFERENCE_SERVICE,
    INFERENCE_SET,
    OWNED_KINDS,
    OWNED_OBJECTS,
    TRAINING_PARAMS,
    TUNING_JOB,
    OwnedKind,
    OwnedObject,
)
from kaito.controllers._parallelism import Parallelism, vllm_parallelism
from kaito.controllers._plan import target_node_count
from kaito.controllers._pod_health import PodProblem, diagnose_pods, restart_note
from kaito.controllers._progress import ProgressReader, describe_progress, http_progress_reader
from kaito.controllers._reconciler import WorkspaceCaches, WorkspaceReconciler
from kaito.controllers._resources import (
    CONFIG_MAPS,
    CONTROLLER_REVISIONS,
    JOBS,
    NODES,
    PODS,
    SERVICES,
    STATEFUL_SETS,
    WORKSPACES,
)
from kaito.controllers._revisions import (
    HASH_ANNOTATION,
    MAX_REVISION_HISTORY,
    controller_revision,
    spec_hash,
    sync_revision,
)
from kaito.controllers._settings import (
    DEFAULT_RUNTIME_IMAGE,
    ControllerSettings,
    validation_context,
)
from kaito.controllers._setup import MAX_CONCURRENT_RECONCILES, add_workspace_controller
from kaito.controllers._status import (
    JobObservation,
    NodeObservation,
    WorkloadObservation,
    compute_status,
)
from kaito.controllers._template_objects import template_statefulset
from kaito.controllers._tuning_objects import TuningPlan, training_config_map, tuning_job

__all__ = (
    "CONFIG_MAPS",
    "CONTROLLER_REVISIONS",
    "DEFAULT_DECODE_CACHE_SIZE",
    "DEFAULT_RUNTIME_IMAGE",
    "HASH_ANNOTATION",
    "HEADLESS_SERVICE",
    "INFERENCE_PARAMS",
    "INFERENCE_SERVICE",
    "INFERENCE_SET",
    "JOBS",
    "MAX_CONCURRENT_RECONCILES",
    "MAX_REVISION_HISTORY",
    "NODES",
    "OWNED_KINDS",
    "OWNED_OBJECTS",
    "PODS",
    "SERVICES",
    "STATEFUL_SETS",
    "TRAINING_PARAMS",
    "TUNING_JOB",
    "WARNING_REASONS",
    "WORKSPACES",
    "ControllerSettings",
    "DecodedWorkspace",
    "InferencePlan",
    "JobObservation",
    "NodeObservation",
    "OwnedKind",
    "OwnedObject",
    "Parallelism",
    "PodProblem",
    "ProgressReader",
    "TuningPlan",
    "WorkloadObservation",
    "WorkspaceCaches",
    "WorkspaceDecoder",
    "WorkspaceReconciler",
    "add_workspace_controller",
    "compute_status",
    "controller_owner_reference",
    "controller_revision",
    "describe_progress",
    "diagnose_pods",
    "ensure_nodes",
    "http_progress_reader",
    "inference_config_map",
    "inference_services",
    "inference_statefulset",
    "merge_inference_config",
    "node_request",
    "observe_job",
    "observe_workload",
    "restart_note",
    "revision_hash",
    "served_model_name",
    "server_command",
    "spec_hash",
    "sync_revision",
    "target_node_count",
    "template_statefulset",
    "training_config_map",
    "transition_events",
    "tuning_job",
    "validation_context",
    "vllm_parallelism",
    "workspace_labels",
)
