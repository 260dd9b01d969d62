"""Kubernetes API machinery: the one implementation every front door uses.

Bottom layer: imports nothing from the rest of ``kaito`` (an import-linter contract keeps it so).
The Workspace API (``kaito.api``), the admission webhook, ``kaito validate`` and the in-process API
server (``kaito.cluster``) all decode, prune, default, validate, patch and convert objects with
this package, so they cannot disagree:

- :func:`decode_json`, :func:`decode_yaml`, :func:`decode_yaml_stream`: bodies and files read as
  kube-apiserver reads them, with size, alias-expansion and depth limits;
- :class:`Schema` (:func:`compile_schema`): structural-schema pruning, defaulting, validation;
- :class:`FieldError` and its constructors: one error, rendered as kube-apiserver text or as a
  ``StatusCause``; :func:`validate_object_meta` and the name/label syntax checks;
- :func:`merge_patch`, :func:`json_patch`, :func:`strategic_merge`, :func:`apply_config`: the
  patch formats; :func:`convert_none`: version conversion; :func:`parse_quantity`.
"""

import contextlib

from kaito.apimachinery._convert import convert_none
from kaito.apimachinery._decode import (
    DEFAULT_LIMITS,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    Decoded,
    DecodeError,
    DecodeLimits,
    decode_json,
    decode_yaml,
    decode_yaml_stream,
    nesting_depth,
)
from kaito.apimachinery._errors import (
    NO_VALUE,
    ErrorType,
    FieldError,
    InvalidSpecError,
    duplicate,
    duplicate_field,
    forbidden,
    go_quote,
    internal,
    invalid,
    invalid_message,
    not_found,
    not_supported,
    render_value,
    required,
    too_long,
    too_many,
    type_invalid,
    unknown_field,
    warning,
)
from kaito.apimachinery._objectmeta import (
    OBJECT_META,
    OBJECT_META_FIELDS,
    OWNER_REFERENCE,
    TOTAL_ANNOTATION_SIZE,
    object_meta_type_error,
    validate_object_meta,
)
from kaito.apimachinery._patch import (
    ApplyConflict,
    JsonPatchError,
    JsonPatchTooLarge,
    StrategicPatchError,
    apply_config,
    json_patch,
    merge_patch,
    strategic_merge,
)
from kaito.apimachinery._quantity import parse_quantity
from kaito.apimachinery._schema import ROOT_FIELDS, Schema, compile_schema, json_type
from kaito.apimachinery._syntax import (
    NameValidator,
    annotation_key_problems,
    dns1035_label_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    label_key_problems,
    label_value_problems,
    path_segment_problems,
    qualified_name_problems,
)

__all__ = (
    "DEFAULT_LIMITS",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "NO_VALUE",
    "OBJECT_META",
    "OBJECT_META_FIELDS",
    "OWNER_REFERENCE",
    "ROOT_FIELDS",
    "TOTAL_ANNOTATION_SIZE",
    "ApplyConflict",
    "DecodeError",
    "DecodeLimits",
    "Decoded",
    "ErrorType",
    "FieldError",
    "InvalidSpecError",
    "JsonPatchError",
    "JsonPatchTooLarge",
    "NameValidator",
    "Schema",
    "StrategicPatchError",
    "annotation_key_problems",
    "apply_config",
    "compile_schema",
    "convert_none",
    "decode_json",
    "decode_yaml",
    "decode_yaml_stream",
    "dns1035_label_problems",
    "dns1123_label_problems",
    "dns1123_subdomain_problems",
    "duplicate",
    "duplicate_field",
    "forbidden",
    "go_quote",
    "internal",
    "invalid",
    "invalid_message",
    "json_patch",
    "json_type",
    "label_key_problems",
    "label_value_problems",
    "merge_patch",
    "nesting_depth",
    "not_found",
    "not_supported",
    "object_meta_type_error",
    "parse_quantity",
    "path_segment_problems",
    "qualified_name_problems",
    "render_value",
    "required",
    "strategic_merge",
    "too_long",
    "too_many",
    "type_invalid",
    "unknown_field",
    "validate_object_meta",
    "warning",
)

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("kaito.apimachinery."):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj
