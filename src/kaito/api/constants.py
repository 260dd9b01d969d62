"""Names shared by the API, the controllers and the runtime: group, labels, conditions, reasons.

API layer. Values are upstream KAITO's so objects and dashboards move between the two.
"""

from __future__ import annotations

from typing import Final

from kaito_runtime import contract

__all__ = (
    "ANNOTATION_BYPASS_RESOURCE_CHECKS",
    "ANNOTATION_ENABLE_LB",
    "ANNOTATION_NODE_IMAGE_FAMILY",
    "ANNOTATION_PERFORMANCE_MODE",
    "ANNOTATION_REVISION",
    "ANNOTATION_RUNTIME",
    "ANNOTATION_USE_LOCAL_WEIGHTS",
    "CONDITION_TYPES",
    "DEFAULT_INFERENCE_CONFIG_TEMPLATE",
    "DEFAULT_LORA_CONFIG_TEMPLATE",
    "DEFAULT_QLORA_CONFIG_TEMPLATE",
    "GROUP",
    "INFERENCE_CONFIG_KEY",
    "KIND",
    "LABEL_WORKSPACE",
    "LABEL_WORKSPACE_NAMESPACE",
    "PLURAL",
    "RESERVED_SELECTOR_LABELS",
    "SHORT_NAMES",
    "STORAGE_VERSION",
    "TUNING_CONFIG_KEY",
    "VERSIONS",
    "WORKSPACE_FINALIZER",
    "ConditionType",
    "Reason",
    "RuntimeName",
    "WorkspaceState",
)

GROUP: Final = "kaito.sh"
KIND: Final = "Workspace"
PLURAL: Final = "workspaces"
SINGULAR: Final = "workspace"
SHORT_NAMES: Final = ("wk", "wks")
CATEGORIES: Final = ("workspace",)
VERSIONS: Final = ("v1alpha1", "v1beta1")
STORAGE_VERSION: Final = "v1beta1"

WORKSPACE_FINALIZER: Final = "workspace.finalizer.kaito.sh"

LABEL_WORKSPACE: Final = "kaito.sh/workspace"
LABEL_WORKSPACE_NAMESPACE: Final = "kaito.sh/workspacenamespace"
LABEL_MACHINE_TYPE: Final = "kaito.sh/machine-type"
LABEL_NODEPOOL: Final = "karpenter.sh/nodepool"

ANNOTATION_ENABLE_LB: Final = "kaito.sh/enablelb"
ANNOTATION_RUNTIME: Final = "kaito.sh/runtime"
ANNOTATION_BYPASS_RESOURCE_CHECKS: Final = "kaito.sh/bypass-resource-checks"
ANNOTATION_NODE_IMAGE_FAMILY: Final = "kaito.sh/node-image-family"
ANNOTATION_NODE_CLASS_NAME: Final = "kaito.sh/node-class-name"
ANNOTATION_PERFORMANCE_MODE: Final = "kaito.sh/performance-mode"
ANNOTATION_USE_LOCAL_WEIGHTS: Final = "kaito.sh/use-local-weights"
ANNOTATION_DISABLE_BENCHMARK: Final = "kaito.sh/disable-benchmark"
ANNOTATION_REVISION: Final = "workspace.kaito.io/revision"

#: Selector keys KAITO sets itself; stripped from user selectors when matching nodes.
RESERVED_SELECTOR_LABELS: Final = frozenset(
    {
        "kaito.sh/workspace",
        "kaito.sh/ragengine",
        "kaito.sh/workspacenamespace",
        "kaito.sh/ragenginenamespace",
        "karpenter.kaito.sh/workspace-name",
        "karpenter.kaito.sh/workspace-namespace",
        "karpenter.kaito.sh/inferenceset",
        "karpenter.kaito.sh/inferenceset-namespace",
    }
)

#: The parameter ConfigMaps' keys: the file names the pods read (the operator<->pod contract).
INFERENCE_CONFIG_KEY: Final = contract.INFERENCE_CONFIG_FILE
TUNING_CONFIG_KEY: Final = contract.TUNING_CONFIG_FILE
DEFAULT_INFERENCE_CONFIG_TEMPLATE: Final = "inference-params-template"
DEFAULT_LORA_CONFIG_TEMPLATE: Final = "lora-params-template"
DEFAULT_QLORA_CONFIG_TEMPLATE: Final = "qlora-params-template"


class ConditionType:
    """Workspace condition types (upstream's, plus the guide's ``WorkspaceReady``)."""

    RESOURCE_READY: Final = "ResourceReady"
    NODE_CLAIM_READY: Final = "NodeClaimReady"
    NODES_READY: Final = "NodesReady"
    INFERENCE_READY: Final = "InferenceReady"
    JOB_STARTED: Final = "JobStarted"
    WORKSPACE_SUCCEEDED: Final = "WorkspaceSucceeded"
    #: The guide's (<= v0.2) name; set alongside WorkspaceSucceeded with the same truth.
    WORKSPACE_READY: Final = "WorkspaceReady"
    WORKSPACE_DELETING: Final = "WorkspaceDeleting"


CONDITION_TYPES: Final = (
    ConditionType.RESOURCE_READY,
    ConditionType.NODE_CLAIM_READY,
    ConditionType.NODES_READY,
    ConditionType.INFERENCE_READY,
    ConditionType.JOB_STARTED,
    ConditionType.WORKSPACE_SUCCEEDED,
    ConditionType.WORKSPACE_READY,
    ConditionType.WORKSPACE_DELETING,
)


class Reason:
    """Condition reasons, as upstream spells them."""

    RESOURCE_SUCCESS: Final = "workspaceResourceStatusSuccess"
    RESOURCE_NOT_READY: Final = "workspaceResourceStatusNotReady"
    NODES_READY: Final = "NodesReady"
    NODE_NOT_READY: Final = "NodeNotReady"
    NODE_PLUGINS_NOT_READY: Final = "NodePluginsNotReady"
    NODE_CLAIMS_READY: Final = "NodeClaimsReady"
    NODE_CLAIM_NOT_READY: Final = "NodeClaimNotReady"
    INFERENCE_SUCCESS: Final = "WorkspaceInferenceStatusSuccess"
    INFERENCE_PENDING: Final = "WorkspaceInferenceStatusPending"
    IMAGE_PULL_ERROR: Final = "ImagePullError"
    CRASH_LOOP_BACK_OFF: Final = "ContainerCrashLoopBackOff"
    OOM_KILLED: Final = "ContainerOOMKilled"
    CONTAINER_START_ERROR: Final = "ContainerStartError"
    POD_EVICTED: Final = "PodEvicted"
    NODE_DISK_PRESSURE: Final = "NodeDiskPressure"
    NODE_MEMORY_PRESSURE: Final = "NodeMemoryPressure"
    UNSCHEDULABLE: Final = "Unschedulable"
    TUNING_STARTED: Final = "WorkspaceTuningJobStatusStarted"
    TUNING_PENDING: Final = "WorkspaceTuningJobStatusPending"
    TUNING_FAILED: Final = "WorkspaceTuningJobStatusFailed"
    SUCCEEDED: Final = "workspaceSucceeded"
    PENDING: Final = "workspacePending"
    FAILED: Final = "workspaceFailed"
    DELETED: Final = "workspaceDeleted"


class WorkspaceState:
    """Values of ``status.state`` (v1beta1)."""

    PENDING: Final = "Pending"
    READY: Final = "Ready"
    NOT_READY: Final = "NotReady"
    RUNNING: Final = "Running"
    SUCCEEDED: Final = "Succeeded"
    FAILED: Final = "Failed"


class RuntimeName:
    """Inference runtimes, selected by the ``kaito.sh/runtime`` annotation."""

    VLLM: Final = "vllm"
    TRANSFORMERS: Final = "transformers"
