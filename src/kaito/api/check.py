"""One entry point for a Workspace document: parse, default, convert, validate.

API layer (pure functions). This is what the admission webhook and ``kaito validate`` both call,
in the order kube-apiserver applies them: decode strictly, apply structural defaults of the
document's version, convert to the storage version, run the admission rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from kaito.api import v1beta1
from kaito.api.constants import GROUP, KIND, STORAGE_VERSION
from kaito.api.convert import structure, structure_lenient
from kaito.api.errors import (
    ErrorType,
    FieldError,
    InvalidSpecError,
    invalid,
    not_supported,
    required,
)
from kaito.api.schema import apply_defaults
from kaito.api.validation import (
    ValidationContext,
    validate_workspace,
    validate_workspace_update,
)
from kaito.api.versions import WORKSPACE_TYPES, convert_workspace, workspace_schema

__all__ = (
    "Checked",
    "check_decoded",
    "check_workspace",
    "decode_workspace",
    "default_workspace",
    "to_storage_version",
)


@attrs.frozen
class Checked:
    """The outcome of checking one document: the defaulted object and every problem found."""

    workspace: v1beta1.Workspace | None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def _version_of(doc: Mapping[str, Any]) -> tuple[str | None, list[FieldError]]:
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    errors: list[FieldError] = []
    served = [f"{GROUP}/{v}" for v in WORKSPACE_TYPES]
    if not api_version:
        errors.append(required("apiVersion", "the document has no apiVersion", fix=served[0]))
    if kind != KIND:
        errors.append(
            invalid("kind", kind, f"expected kind {KIND!r}")
            if kind
            else required("kind", "the document has no kind", fix=KIND)
        )
    if not api_version or not isinstance(api_version, str):
        return None, errors
    group, _, version = api_version.rpartition("/")
    if group != GROUP or version not in WORKSPACE_TYPES:
        errors.append(not_supported("apiVersion", api_version, served))
        return None, errors
    return version, errors


def default_workspace(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the structural defaults of the document's own version (as the API server does)."""
    version = str(doc.get("apiVersion", "")).rpartition("/")[2]
    schema = workspace_schema(version if version in WORKSPACE_TYPES else STORAGE_VERSION)
    return dict(apply_defaults(dict(doc), schema))


def to_storage_version(doc: Mapping[str, Any]) -> v1beta1.Workspace:
    """Parse any served version into the storage version's type (strict).

    Raises:
        InvalidSpecError: the document does not parse.
    """
    version, errors = _version_of(doc)
    if errors:
        raise InvalidSpecError(errors, name=_name(doc))
    structure(doc, WORKSPACE_TYPES[version or STORAGE_VERSION])
    converted, _ = convert_workspace(doc, STORAGE_VERSION)
    return structure(converted, v1beta1.Workspace)


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""


def _split(ws: v1beta1.Workspace | None, problems: list[FieldError]) -> Checked:
    return Checked(
        ws,
        tuple(p for p in problems if not p.warning),
        tuple(p for p in problems if p.warning),
    )


def decode_workspace(doc: Mapping[str, Any]) -> Checked:
    """Decode a document of any served version into the storage version's type, once.

    Defaults, strict structure (unknown fields are reported but do not stop decoding), conversion:
    the ``workspace`` that :func:`check_decoded` validates, and the problems decoding found.
    """
    ws, errors = _hub(doc)
    if ws is None:
        return Checked(None, tuple(errors))
    return _split(ws, errors)


def check_decoded(
    decoded: Checked, ctx: ValidationContext | None = None, *, old: Checked | None = None
) -> Checked:
    """Validate what :func:`decode_workspace` returned (an update when ``old`` is given)."""
    ctx = ctx or ValidationContext()
    ws = decoded.workspace
    if ws is None:
        return decoded
    if old is not None and old.workspace is not None:
        problems = validate_workspace_update(old.workspace, ws, ctx)
    else:
        problems = validate_workspace(ws, ctx)
    return _split(ws, [*decoded.errors, *decoded.warnings, *problems])


def _hub(doc: Mapping[str, Any]) -> tuple[v1beta1.Workspace | None, list[FieldError]]:
    version, errors = _version_of(doc)
    if version is None:
        return None, errors
    defaulted = default_workspace(doc)
    try:
        structure(defaulted, WORKSPACE_TYPES[version])
    except InvalidSpecError as exc:
        if any(e.type is not ErrorType.UNKNOWN_FIELD for e in exc.errors):
            return None, errors + list(exc.errors)
        # Only unknown fields: report them, and go on validating the rest of the object.
        errors += list(exc.errors)
    converted, _ = convert_workspace(defaulted, STORAGE_VERSION)
    ws, _ = structure_lenient(converted, v1beta1.Workspace)
    return ws, errors


def check_workspace(
    doc: Mapping[str, Any],
    ctx: ValidationContext | None = None,
    *,
    old: Mapping[str, Any] | None = None,
) -> Checked:
    """Parse, default and validate a Workspace document (an update when ``old`` is given)."""
    return check_decoded(
        decode_workspace(doc), ctx, old=None if old is None else decode_workspace(old)
    )
