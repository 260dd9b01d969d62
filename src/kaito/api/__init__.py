"""The Workspace API (group ``kaito.sh``): types, conversion, defaults, validation, the CRD.

API layer: imports nothing from the engine, the controllers or the cluster. Python attributes are
snake_case; the wire is camelCase; one cattrs converter maps between them.
"""

from __future__ import annotations

from kaito.api import constants, v1alpha1, v1beta1
from kaito.api._check import (
    Checked,
    Stage,
    check_decoded,
    check_workspace,
    decode_workspace,
    default_workspace,
    to_storage_version,
)
from kaito.api._conditions import find_condition, set_condition
from kaito.api._config_files import CONFIG_FILE_LIMITS, ConfigFileError, load_config_file
from kaito.api._convert import structure, structure_lenient, unstructure
from kaito.api._crd import printer_columns, render_crds, workspace_crd
from kaito.api._meta import (
    Condition,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    OwnerReference,
)
from kaito.api._schema import openapi_schema
from kaito.api._spec import (
    AdapterSpec,
    DataDestination,
    DataSource,
    InferenceSpec,
    PartitionSpec,
    PresetOptions,
    PresetSpec,
    TuningSpec,
)
from kaito.api._templates import DEFAULT_RELEASE_NAMESPACE, default_template, default_templates
from kaito.api._validation import (
    NodeInfo,
    ValidationContext,
    referenced_config_maps,
    runtime_of,
    selector_as_map,
    validate_workspace,
    validate_workspace_update,
)
from kaito.api._versions import (
    WORKSPACE_TYPES,
    convert_workspace,
    workspace_schema,
    workspace_structural_schema,
    workspace_type,
)

__all__ = (
    "CONFIG_FILE_LIMITS",
    "DEFAULT_RELEASE_NAMESPACE",
    "WORKSPACE_TYPES",
    "AdapterSpec",
    "Checked",
    "Condition",
    "ConfigFileError",
    "DataDestination",
    "DataSource",
    "InferenceSpec",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NodeInfo",
    "ObjectMeta",
    "OwnerReference",
    "PartitionSpec",
    "PresetOptions",
    "PresetSpec",
    "Stage",
    "TuningSpec",
    "ValidationContext",
    "check_decoded",
    "check_workspace",
    "constants",
    "convert_workspace",
    "decode_workspace",
    "default_template",
    "default_templates",
    "default_workspace",
    "find_condition",
    "load_config_file",
    "openapi_schema",
    "printer_columns",
    "referenced_config_maps",
    "render_crds",
    "runtime_of",
    "selector_as_map",
    "set_condition",
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
