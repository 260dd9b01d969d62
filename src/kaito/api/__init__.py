"""The Workspace API (group ``kaito.sh``): types, conversion, defaults, validation, the CRD.

API layer: imports nothing from the engine, the controllers or the cluster. Python attributes are
snake_case; the wire is camelCase; one cattrs converter maps between them.
"""

from __future__ import annotations

from kaito.api import constants, v1alpha1, v1beta1
from kaito.api._config_files import CONFIG_FILE_LIMITS, ConfigFileError, load_config_file
from kaito.api.check import (
    Checked,
    Stage,
    check_decoded,
    check_workspace,
    decode_workspace,
    default_workspace,
    to_storage_version,
)
from kaito.api.constants import ConditionType, Reason, RuntimeName, WorkspaceState
from kaito.api.convert import structure, structure_lenient, unstructure
from kaito.api.crd import printer_columns, render_crds, workspace_crd
from kaito.api.errors import ErrorType, FieldError, InvalidSpecError
from kaito.api.meta import (
    Condition,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    OwnerReference,
)
from kaito.api.schema import openapi_schema
from kaito.api.spec import (
    AdapterSpec,
    DataDestination,
    DataSource,
    InferenceSpec,
    PartitionSpec,
    PresetOptions,
    PresetSpec,
    TuningSpec,
)
from kaito.api.templates import default_template, default_templates
from kaito.api.validation import (
    NodeInfo,
    ValidationContext,
    runtime_of,
    validate_workspace,
    validate_workspace_update,
)
from kaito.api.versions import (
    convert_workspace,
    workspace_schema,
    workspace_structural_schema,
    workspace_type,
)

__all__ = (
    "CONFIG_FILE_LIMITS",
    "AdapterSpec",
    "Checked",
    "Condition",
    "ConditionType",
    "ConfigFileError",
    "DataDestination",
    "DataSource",
    "ErrorType",
    "FieldError",
    "InferenceSpec",
    "InvalidSpecError",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NodeInfo",
    "ObjectMeta",
    "OwnerReference",
    "PartitionSpec",
    "PresetOptions",
    "PresetSpec",
    "Reason",
    "RuntimeName",
    "Stage",
    "TuningSpec",
    "ValidationContext",
    "WorkspaceState",
    "check_decoded",
    "check_workspace",
    "constants",
    "convert_workspace",
    "decode_workspace",
    "default_template",
    "default_templates",
    "default_workspace",
    "load_config_file",
    "openapi_schema",
    "printer_columns",
    "render_crds",
    "runtime_of",
    "structure",
    "structure_lenient",
    "to_storage_version",
    "unstructure",
    "v1alpha1",
    "v1beta1",
    "validate_workspace",
    "validate_workspace_update",
    "workspace_crd",
    "workspace_schema",
    "workspace_structural_schema",
    "workspace_type",
)
