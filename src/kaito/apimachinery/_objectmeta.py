"""``metadata``: its structural schema, its type coercion at decode time, and its validation.

Bottom layer (pure functions). kube-apiserver decodes a custom resource's ``metadata`` into the
typed ``ObjectMeta`` (a type mismatch is a 400 ``cannot be handled as`` error, unknown fields are
pruned), then validates it (``ValidateObjectMetaAccessor``: names, namespace, labels,
annotations and their 256 KiB total, owner references, finalizers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kaito.apimachinery._errors import (
    FieldError,
    forbidden,
    invalid,
    required,
    too_long,
)
from kaito.apimachinery._syntax import (
    NameValidator,
    annotation_key_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    label_key_problems,
    label_value_problems,
    path_segment_problems,
    qualified_name_problems,
)

__all__ = (
    "OBJECT_META",
    "OBJECT_META_FIELDS",
    "OWNER_REFERENCE",
    "TOTAL_ANNOTATION_SIZE",
    "json_kind",
    "object_meta_type_error",
    "validate_object_meta",
)

TOTAL_ANNOTATION_SIZE: Final = 256 * 1024
"""kube-apiserver's limit on the bytes of all annotation keys and values together."""

_STRING: Final = {"type": "string"}
_INT64: Final = {"type": "integer", "format": "int64"}
_TIME: Final = {"type": "string", "format": "date-time"}
_MAP_STRING: Final = {"type": "object", "additionalProperties": {"type": "string"}}

OWNER_REFERENCE: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "apiVersion": _STRING,
        "kind": _STRING,
        "name": _STRING,
        "uid": _STRING,
        "controller": {"type": "boolean"},
        "blockOwnerDeletion": {"type": "boolean"},
    },
    "required": ["apiVersion", "kind", "name", "uid"],
}

OBJECT_META: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "name": {**_STRING, "description": "Name must be unique within a namespace."},
        "generateName": _STRING,
        "namespace": _STRING,
        "selfLink": _STRING,
        "uid": _STRING,
        "resourceVersion": _STRING,
        "generation": _INT64,
        "creationTimestamp": _TIME,
        "deletionTimestamp": _TIME,
        "deletionGracePeriodSeconds": _INT64,
        "labels": _MAP_STRING,
        "annotations": _MAP_STRING,
        "ownerReferences": {
            "type": "array",
            "items": OWNER_REFERENCE,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "x-kubernetes-patch-merge-key": "uid",
            "x-kubernetes-patch-strategy": "merge",
        },
        "finalizers": {
            "type": "array",
            "items": _STRING,
            "x-kubernetes-list-type": "set",
            "x-kubernetes-patch-strategy": "merge",
        },
        "managedFields": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "x-kubernetes-list-type": "atomic",
        },
    },
    "description": "Standard object's metadata.",
}
"""The structural schema of ``ObjectMeta`` (published for every kind and used to coerce it)."""

OBJECT_META_FIELDS: Final = frozenset(OBJECT_META["properties"])

_GO_TYPES: Final = {
    "labels": ("map[string]string", "string"),
    "annotations": ("map[string]string", "string"),
    "finalizers": ("[]string", "string"),
    "ownerReferences": ("[]v1.OwnerReference", "v1.OwnerReference"),
    "managedFields": ("[]v1.ManagedFieldsEntry", "v1.ManagedFieldsEntry"),
    "generation": ("int64", "int64"),
    "deletionGracePeriodSeconds": ("int64", "int64"),
    "creationTimestamp": ("v1.Time", "v1.Time"),
    "deletionTimestamp": ("v1.Time", "v1.Time"),
}
_STANDARD_FINALIZERS: Final = ("orphan", "foregroundDeletion")


def json_kind(value: Any) -> str:
    """The JSON kind of a value as Go's decoder names it (``string``, ``number``, ``object``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type_of(field: str, nested: bool) -> str:
    types = _GO_TYPES.get(field)
    if types is None:
        return "string"
    return types[1] if nested else types[0]


def _type_mismatch(field: str, value: Any, nested: bool) -> str:
    return (
        f"json: cannot unmarshal {json_kind(value)} into Go struct field ObjectMeta.{field} of "
        f"type {_go_type_of(field, nested)}"
    )


_SCALAR_FIELDS: Final = {
    name: (int if schema["type"] == "integer" else str)
    for name, schema in OBJECT_META["properties"].items()
    if schema["type"] in ("string", "integer")
}


def _first_mismatch(field: str, value: Any) -> str | None:
    """The Go decode error of one ``ObjectMeta`` field, or ``None`` when it decodes."""
    kind = _SCALAR_FIELDS.get(field)
    if kind is str:
        return None if isinstance(value, str) else _type_mismatch(field, value, nested=False)
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return _type_mismatch(field, value, nested=False)
    if field in ("labels", "annotations"):
        if not isinstance(value, dict):
            return _type_mismatch(field, value, nested=False)
        for item in value.values():
            if not isinstance(item, str) and item is not None:
                return _type_mismatch(field, item, nested=True)
        return None
    if field in ("finalizers", "ownerReferences", "managedFields"):
        if not isinstance(value, list):
            return _type_mismatch(field, value, nested=False)
        for item in value:
            if item is None:
                continue
            if field == "finalizers":
                if not isinstance(item, str):
                    return _type_mismatch(field, item, nested=True)
            elif not isinstance(item, dict):
                return _type_mismatch(field, item, nested=True)
            elif field == "ownerReferences":
                for key, sub in OWNER_REFERENCE["properties"].items():
                    got = item.get(key)
                    wanted = bool if sub["type"] == "boolean" else str
                    if got is not None and not isinstance(got, wanted):
                        return _type_mismatch(f"{field}.{key}", got, nested=True)
    return None


def object_meta_type_error(metadata: Any, path: str = "metadata") -> FieldError | None:
    """The decode error of a ``metadata`` whose shape does not fit ``ObjectMeta``, if any.

    kube-apiserver refuses such an object with 400 ``Kind in version "v" cannot be handled as a
    Kind: metadata: Invalid value: ...: json: cannot unmarshal ...``; ``None`` when it decodes.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return invalid(
            path,
            metadata,
            f"json: cannot unmarshal {json_kind(metadata)} into Go value of type v1.ObjectMeta",
        )
    for field, value in metadata.items():
        if value is None:
            continue
        problem = _first_mismatch(field, value)
        if problem is not None:
            return invalid(path, metadata, problem)
    return None


def validate_object_meta(
    meta: Mapping[str, Any],
    *,
    namespaced: bool,
    name_validator: NameValidator = dns1123_subdomain_problems,
    path: str = "metadata",
) -> list[FieldError]:
    """Validate the ``metadata`` of an object about to be stored (``ValidateObjectMeta``).

    ``meta`` has passed :func:`object_meta_type_error` (it is a mapping of the right shapes).
    """
    errors: list[FieldError] = []
    # generateName itself is not checked: the name generated from it is (as
    # ValidateObjectMetaAccessorWithOpts does), so "name." prefixes stay usable.
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        errors.append(required(f"{path}.name", "name or generateName is required"))
    else:
        for problem in path_segment_problems(name) or name_validator(name):
            errors.append(invalid(f"{path}.name", name, problem))
    namespace = meta.get("namespace") or ""
    if namespaced and not namespace:
        errors.append(required(f"{path}.namespace"))
    elif namespaced:
        for problem in dns1123_label_problems(namespace):
            errors.append(invalid(f"{path}.namespace", namespace, problem))
    elif namespace:
        errors.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        errors.append(
            invalid(f"{path}.generation", generation, "must be greater than or equal to 0")
        )
    labels = meta.get("labels")
    if labels:
        errors += _validate_labels(labels, f"{path}.labels")
    annotations = meta.get("annotations")
    if annotations:
        errors += _validate_annotations(annotations, f"{path}.annotations")
    owners = meta.get("ownerReferences")
    if owners:
        errors += _validate_owner_references(owners, f"{path}.ownerReferences")
    finalizers = meta.get("finalizers")
    if finalizers:
        errors += _validate_finalizers(finalizers, f"{path}.finalizers")
    return errors


def _validate_labels(labels: Mapping[str, Any], path: str) -> list[FieldError]:
    errors = []
    for key, value in labels.items():
        for problem in label_key_problems(key):
            errors.append(invalid(path, key, problem))
        for problem in label_value_problems(value if isinstance(value, str) else str(value)):
            errors.append(invalid(path, value, problem))
    return errors


def _validate_annotations(annotations: Mapping[str, Any], path: str) -> list[FieldError]:
    errors = []
    total = 0
    for key, value in annotations.items():
        for problem in annotation_key_problems(key):
            errors.append(invalid(path, key, problem))
        total += len(key.encode()) + (len(value.encode()) if isinstance(value, str) else 0)
    if total > TOTAL_ANNOTATION_SIZE:
        errors.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errors


def _validate_owner_references(owners: list[Any], path: str) -> list[FieldError]:
    errors = []
    first_controller = ""
    for i, ref in enumerate(owners):
        at = f"{path}[{i}]"
        if not isinstance(ref, dict):
            continue
        api_version = ref.get("apiVersion") or ""
        if not api_version:
            errors.append(required(f"{at}.apiVersion", "must not be empty"))
        elif api_version.count("/") > 1 or api_version.endswith("/"):
            errors.append(
                invalid(f"{at}.apiVersion", api_version, "must be <group>/<version> or <version>")
            )
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                errors.append(required(f"{at}.{key}", "must not be empty"))
        if api_version == "v1" and ref.get("kind") == "Event":
            errors.append(invalid(at, ref, "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if first_controller:
                errors.append(
                    invalid(
                        path,
                        owners,
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {first_controller} and {current}",
                    )
                )
            else:
                first_controller = current
    return errors


def _validate_finalizers(finalizers: list[Any], path: str) -> list[FieldError]:
    errors = []
    seen: set[str] = set()
    for i, finalizer in enumerate(finalizers):
        if not isinstance(finalizer, str):
            continue
        for problem in qualified_name_problems(finalizer):
            errors.append(invalid(path, finalizer, problem))
        if finalizer in seen:
            errors.append(FieldError("Duplicate", f"{path}[{i}]", finalizer))
        seen.add(finalizer)
    if all(f in finalizers for f in _STANDARD_FINALIZERS):
        errors.append(
            invalid(
                path,
                finalizers,
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    return errors
