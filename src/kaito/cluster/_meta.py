"""Object metadata rules shared by every kind: names, labels, timestamps and uids.

Messages follow apimachinery's validation wording so that clients see what kube-apiserver says.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kaito.api.validation.syntax import (
    dns1123_label_problems as validate_dns1123_label,
)
from kaito.api.validation.syntax import (
    dns1123_subdomain_problems as validate_dns1123_subdomain,
)
from kaito.api.validation.syntax import label_key_problems as _validate_qualified_name
from kaito.api.validation.syntax import label_value_problems as _validate_label_value
from kaito.cluster._errors import FieldError

__all__ = (
    "TimeSource",
    "format_time",
    "generate_name_suffix",
    "new_uid",
    "system_clock",
    "validate_dns1035_label",
    "validate_dns1123_label",
    "validate_dns1123_subdomain",
    "validate_object_meta",
    "validate_path_segment_name",
)

TimeSource = Callable[[], dt.datetime]
"""Returns the current UTC time; injected so tests control timestamps."""


def system_clock() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 with second precision, as ``metav1.Time`` serialises."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    """A random ``metadata.uid``."""
    return str(uuid.uuid4())


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name_suffix() -> str:
    """The five random characters kube-apiserver appends to ``generateName``."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"

_RE_DNS1035 = re.compile(_DNS1035_LABEL)

_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    f"'abc-123', regex used for validation is '{_DNS1035_LABEL}')"
)


def validate_dns1035_label(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1035 label (Service names)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _RE_DNS1035.fullmatch(value):
        problems.append(_DNS1035_MSG)
    return problems


def validate_path_segment_name(value: str) -> list[str]:
    """Problems with ``value`` as a URL path segment (any object name must be one)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


NameValidator = Callable[[str], list[str]]
_TOTAL_ANNOTATION_SIZE = 256 * 1024
_STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


def validate_object_meta(
    meta: Mapping[str, Any], *, namespaced: bool, name_validator: NameValidator
) -> list[FieldError]:
    """Validate ``metadata`` of an object about to be stored (``ValidateObjectMeta``)."""
    errors: list[FieldError] = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        errors.append(
            FieldError("Required", "metadata.name", detail="name or generateName is required")
        )
    else:
        for problem in validate_path_segment_name(name) or name_validator(name):
            errors.append(FieldError("Invalid", "metadata.name", name, problem))
    namespace = meta.get("namespace", "")
    if namespaced and not namespace:
        errors.append(FieldError("Required", "metadata.namespace"))
    elif not namespaced and namespace:
        errors.append(
            FieldError("Forbidden", "metadata.namespace", detail="not allowed on this type")
        )
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        errors.append(FieldError("Invalid", "metadata.labels", labels, "must be an object"))
    else:
        for key, value in labels.items():
            for problem in _validate_qualified_name(key):
                errors.append(FieldError("Invalid", "metadata.labels", key, problem))
            if not isinstance(value, str):
                errors.append(
                    FieldError("Invalid", f"metadata.labels[{key}]", value, "must be a string")
                )
                continue
            for problem in _validate_label_value(value):
                errors.append(FieldError("Invalid", "metadata.labels", value, problem))
    annotations = meta.get("annotations") or {}
    if isinstance(annotations, dict):
        total = 0
        for key, value in annotations.items():
            for problem in _validate_qualified_name(key.lower()):
                errors.append(FieldError("Invalid", "metadata.annotations", key, problem))
            total += len(key) + (len(value) if isinstance(value, str) else 0)
        if total > _TOTAL_ANNOTATION_SIZE:
            errors.append(
                FieldError(
                    "TooLong",
                    "metadata.annotations",
                    detail=f"may not be more than {_TOTAL_ANNOTATION_SIZE} bytes",
                )
            )
    finalizers = meta.get("finalizers") or []
    if isinstance(finalizers, list):
        for i, finalizer in enumerate(finalizers):
            if not isinstance(finalizer, str):
                errors.append(
                    FieldError(
                        "Invalid", f"metadata.finalizers[{i}]", finalizer, "must be a string"
                    )
                )
                continue
            if finalizer in _STANDARD_FINALIZERS:
                continue
            for problem in _validate_qualified_name(finalizer):
                errors.append(
                    FieldError("Invalid", f"metadata.finalizers[{i}]", finalizer, problem)
                )
        if len(set(finalizers)) != len(finalizers):
            seen: set[object] = set()
            for i, finalizer in enumerate(finalizers):
                if finalizer in seen:
                    errors.append(FieldError("Duplicate", f"metadata.finalizers[{i}]", finalizer))
                seen.add(finalizer)
    owners = meta.get("ownerReferences") or []
    if isinstance(owners, list):
        controllers = 0
        for i, ref in enumerate(owners):
            path = f"metadata.ownerReferences[{i}]"
            if not isinstance(ref, dict):
                errors.append(FieldError("Invalid", path, ref, "must be an object"))
                continue
            for key in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(key):
                    errors.append(
                        FieldError(
                            "Invalid", f"{path}.{key}", ref.get(key, ""), f"{key} must not be empty"
                        )
                    )
            if ref.get("controller") is True:
                controllers += 1
        if controllers > 1:
            errors.append(
                FieldError(
                    "Invalid",
                    "metadata.ownerReferences",
                    owners,
                    "Only one reference can have Controller set to true",
                )
            )
    return errors
