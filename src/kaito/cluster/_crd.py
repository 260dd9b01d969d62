"""CustomResourceDefinitions: validate a CRD, establish it, and turn each served version into a
:class:`ResourceType` (structural schema, printer columns, scale and status subresources)."""

from __future__ import annotations

import copy
from typing import Any

from kaito.apimachinery import FieldError, compile_schema, not_supported
from kaito.cluster._builtins import OBJECT_META
from kaito.cluster._json import Obj
from kaito.cluster._jsonpath import JsonPathError, compile_path
from kaito.cluster._meta import TimeSource, format_time
from kaito.cluster._resource_types import (
    PrinterColumn,
    ResourceType,
    ScalePaths,
    Strategy,
    version_priority,
)

__all__ = ("CRD_CLEANUP_FINALIZER", "CrdStrategy", "crd_resource_type", "custom_resource_types")

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

_AGE_COLUMN = PrinterColumn(
    "Age",
    "date",
    ".metadata.creationTimestamp",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _check_structural(
    schema: Any, path: str, errors: list[FieldError], *, root: bool = False
) -> None:
    if not isinstance(schema, dict):
        errors.append(FieldError("Invalid", path, schema, "must be an object"))
        return
    kind = schema.get("type")
    if root and kind != "object":
        errors.append(
            FieldError("Required", f"{path}.type", detail="must not be empty at the root")
            if not kind
            else FieldError("Invalid", f"{path}.type", kind, "must be object at the root")
        )
    if (
        not kind
        and not schema.get("x-kubernetes-int-or-string")
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and not root
    ):
        errors.append(
            FieldError(
                "Required", f"{path}.type", detail="must not be empty for specified object fields"
            )
        )
    if schema.get("x-kubernetes-int-or-string") and kind:
        errors.append(
            FieldError(
                "Invalid",
                f"{path}.type",
                kind,
                "must be empty when x-kubernetes-int-or-string is true",
            )
        )
    for key, sub in (schema.get("properties") or {}).items():
        _check_structural(sub, f"{path}.properties[{key}]", errors)
    if isinstance(schema.get("additionalProperties"), dict):
        _check_structural(schema["additionalProperties"], f"{path}.additionalProperties", errors)
        if schema.get("properties"):
            errors.append(
                FieldError(
                    "Forbidden",
                    f"{path}.additionalProperties",
                    detail="additionalProperties and properties are mutual exclusive",
                )
            )
    if kind == "array":
        if not isinstance(schema.get("items"), dict):
            errors.append(FieldError("Required", f"{path}.items", detail="must be specified"))
        else:
            _check_structural(schema["items"], f"{path}.items", errors)


class CrdStrategy(Strategy):
    """CRDs: validation, the cleanup finalizer and the status the CRD controllers would set."""

    def __init__(self, clock: TimeSource) -> None:
        self._clock = clock

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        names = spec.setdefault("names", {})
        if names.get("kind") and not names.get("listKind"):
            names["listKind"] = f"{names['kind']}List"
        if names.get("kind") and not names.get("singular"):
            names["singular"] = str(names["kind"]).lower()
        spec.setdefault("conversion", {"strategy": "None"})

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {}
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if CRD_CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CRD_CLEANUP_FINALIZER)
        self._establish(obj, None)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        self._establish(new, old)

    def _establish(self, obj: Obj, old: Obj | None) -> None:
        spec = obj.get("spec") or {}
        status = obj.setdefault("status", {})
        now = format_time(self._clock())
        previous = {
            c.get("type"): c for c in ((old or {}).get("status") or {}).get("conditions") or []
        }

        def condition(kind: str, value: str, reason: str, message: str) -> Obj:
            prior = previous.get(kind)
            since = (
                prior.get("lastTransitionTime", now)
                if prior and prior.get("status") == value
                else now
            )
            return {
                "type": kind,
                "status": value,
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            }

        status["conditions"] = [
            condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ),
        ]
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            status["conditions"].append(
                condition(
                    "Terminating",
                    "True",
                    "InstanceDeletionInProgress",
                    "CustomResource deletion is in progress",
                )
            )
        status["acceptedNames"] = copy.deepcopy(spec.get("names") or {})
        stored = list(status.get("storedVersions") or [])
        for version in spec.get("versions") or []:
            if (
                isinstance(version, dict)
                and version.get("storage")
                and version.get("name") not in stored
            ):
                stored.append(version["name"])
        status["storedVersions"] = stored

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        errors: list[FieldError] = []
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group", "")
        plural = names.get("plural", "")
        name = (obj.get("metadata") or {}).get("name", "")
        if not group:
            errors.append(FieldError("Required", "spec.group"))
        elif "." not in group:
            errors.append(
                FieldError(
                    "Invalid", "spec.group", group, "should be a domain with at least one dot"
                )
            )
        if not plural:
            errors.append(FieldError("Required", "spec.names.plural"))
        if not names.get("kind"):
            errors.append(FieldError("Required", "spec.names.kind"))
        if plural and group and name != f"{plural}.{group}":
            errors.append(
                FieldError(
                    "Invalid", "metadata.name", name, 'must be spec.names.plural+"."+spec.group'
                )
            )
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errors.append(
                not_supported(
                    "spec.scope",
                    spec.get("scope"),
                    ("Cluster", "Namespaced"),
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            errors.append(
                FieldError(
                    "Invalid",
                    "spec.versions",
                    versions,
                    "must have exactly one version marked as storage version",
                )
            )
        storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
        if versions and len(storage) != 1:
            errors.append(
                FieldError(
                    "Invalid",
                    "spec.versions",
                    versions,
                    "must have exactly one version marked as storage version",
                )
            )
        seen: set[str] = set()
        for i, version in enumerate(versions):
            path = f"spec.versions[{i}]"
            if not isinstance(version, dict):
                continue
            vname = version.get("name", "")
            if vname in seen:
                errors.append(FieldError("Invalid", f"{path}.name", vname, "must appear only once"))
            seen.add(vname)
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                errors.append(
                    FieldError(
                        "Required", f"{path}.schema.openAPIV3Schema", detail="schemas are required"
                    )
                )
            else:
                _check_structural(schema, f"{path}.schema.openAPIV3Schema", errors, root=True)
            for j, column in enumerate(version.get("additionalPrinterColumns") or []):
                try:
                    compile_path(str(column.get("jsonPath", "")))
                except JsonPathError as error:
                    errors.append(
                        FieldError(
                            "Invalid",
                            f"{path}.additionalPrinterColumns[{j}].jsonPath",
                            column.get("jsonPath"),
                            str(error),
                        )
                    )
        if old is not None:
            old_spec = old.get("spec") or {}
            if old_spec.get("group") != group:
                errors.append(FieldError("Invalid", "spec.group", group, "field is immutable"))
            if (old_spec.get("names") or {}).get("plural") != plural:
                errors.append(
                    FieldError("Invalid", "spec.names.plural", plural, "field is immutable")
                )
            if old_spec.get("scope") != spec.get("scope"):
                errors.append(
                    FieldError("Invalid", "spec.scope", spec.get("scope"), "field is immutable")
                )
        return errors


def crd_resource_type(clock: TimeSource) -> ResourceType:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition resource itself."""
    from kaito.cluster._builtins import KIND_SCHEMAS

    raw = KIND_SCHEMAS[("apiextensions.k8s.io", "CustomResourceDefinition")]
    return ResourceType(
        group="apiextensions.k8s.io",
        version="v1",
        kind="CustomResourceDefinition",
        plural="customresourcedefinitions",
        singular="customresourcedefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=frozenset({"status"}),
        storage_version="v1",
        has_generation=True,
        schema=compile_schema(raw, lenient=True),
        openapi=raw,
        strategy=CrdStrategy(clock),
    )


def _published_schema(schema: Obj) -> Obj:
    published = copy.deepcopy(schema)
    props = published.setdefault("properties", {})
    props.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": (
                "APIVersion defines the versioned schema of this representation of an object."
            ),
        },
    )
    props.setdefault(
        "kind",
        {
            "type": "string",
            "description": (
                "Kind is a string value representing the REST resource this object represents."
            ),
        },
    )
    props["metadata"] = OBJECT_META
    return published


def custom_resource_types(crd: Obj) -> list[ResourceType]:
    """One :class:`ResourceType` per served version of an (already validated) CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    storage = next(
        (v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else ""
    )
    types = []
    for version in sorted(versions, key=lambda v: version_priority(v.get("name", ""))):
        if not version.get("served", True):
            continue
        raw_schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        subresources = version.get("subresources") or {}
        scale = subresources.get("scale")
        columns = tuple(
            PrinterColumn(
                name=str(c.get("name", "")),
                type=str(c.get("type", "string")),
                json_path=str(c.get("jsonPath", "")),
                description=str(c.get("description", "")),
                priority=int(c.get("priority", 0)),
                format=str(c.get("format", "")),
            )
            for c in version.get("additionalPrinterColumns") or []
            if isinstance(c, dict)
        ) or (_AGE_COLUMN,)
        types.append(
            ResourceType(
                group=str(spec.get("group", "")),
                version=str(version.get("name", "")),
                kind=str(names.get("kind", "")),
                plural=str(names.get("plural", "")),
                singular=str(names.get("singular") or str(names.get("kind", "")).lower()),
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(
                    name for name in ("status", "scale") if isinstance(subresources.get(name), dict)
                ),
                storage_version=storage,
                custom=True,
                has_generation=True,
                schema=compile_schema(raw_schema),
                openapi=_published_schema(raw_schema),
                printer_columns=columns,
                selectable_fields=tuple(
                    str(f.get("jsonPath", "")).lstrip(".")
                    for f in version.get("selectableFields") or []
                    if isinstance(f, dict)
                ),
                allow_unconditional_update=False,
                scale=ScalePaths(
                    spec_replicas=scale.get("specReplicasPath", ".spec.replicas"),
                    status_replicas=scale.get("statusReplicasPath", ".status.replicas"),
                    label_selector=scale.get("labelSelectorPath", ""),
                )
                if isinstance(scale, dict)
                else None,
                list_kind_override=str(names.get("listKind", "")),
            )
        )
    return types
