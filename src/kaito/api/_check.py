"""One entry point for a Workspace document: the pipeline the API server runs, then the rules.

API layer (pure functions). The admission webhook, ``kaito validate`` and the in-process API
server agree because they run the same steps with the same code (``kaito.apimachinery``):

1. **decode** (400 on the server): ``apiVersion`` and ``kind`` served, ``metadata`` shaped like
   ``ObjectMeta``, and the strict-decoding errors ``kubectl`` asks for (keys given twice, fields
   the schema does not declare, which are pruned);
2. **default** with the structural defaults of the document's own version;
3. **schema** (422 ``Invalid``): ``ValidateObjectMeta`` and the structural schema;
4. convert to the storage version (``None`` strategy), default again, build the typed object;
5. **admission**: the Workspace rules, the admission webhook's verdict.

Each stage that leaves an object it can build lets the next one run too, so ``kaito validate``
reports everything it can find (each field once); :attr:`Checked.refusal` is what the API server
itself reports: the errors of the first stage that refused.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from kaito.api import v1beta1
from kaito.api._convert import construct, structure, with_fix
from kaito.api._validation import (
    ValidationContext,
    validate_workspace,
    validate_workspace_update,
)
from kaito.api._versions import (
    WORKSPACE_TYPES,
    convert_workspace,
    workspace_structural_schema,
)
from kaito.api.constants import GROUP, KIND, STORAGE_VERSION
from kaito.apimachinery import (
    FieldError,
    InvalidSpecError,
    convert_none,
    duplicate_field,
    invalid,
    not_supported,
    object_meta_type_error,
    required,
    validate_object_meta,
)

__all__ = (
    "Checked",
    "Stage",
    "check_decoded",
    "check_workspace",
    "decode_workspace",
    "default_workspace",
    "to_storage_version",
)

_STORAGE_API_VERSION: Final = f"{GROUP}/{STORAGE_VERSION}"


class Stage(enum.Enum):
    """Where in the API server's pipeline a problem is found (and how the server refuses it)."""

    DECODE = "decode"
    """400 ``BadRequest``: not a served Workspace, malformed metadata, strict decoding errors."""
    SCHEMA = "schema"
    """422 ``Invalid``: object metadata and the structural schema."""
    ADMISSION = "admission"
    """Denied by the admission webhook: the Workspace rules."""


@attrs.frozen
class Checked:
    """The outcome of checking one document: the defaulted object and every problem found."""

    workspace: v1beta1.Workspace | None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()
    stages: tuple[Stage, ...] = ()
    """The stage that found each error (aligned with ``errors``)."""
    refused_at: Stage | None = None
    """The first stage that refused the document (``None`` when it is valid)."""
    refusal: tuple[FieldError, ...] = ()
    """The errors of that stage: what the API server (and its webhook) would report."""

    @property
    def ok(self) -> bool:
        return not self.errors


class _Report:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.stages: list[Stage] = []
        self.warnings: list[FieldError] = []
        self.refused_at: Stage | None = None
        self.refusal: list[FieldError] = []

    def add(self, stage: Stage, problems: Sequence[FieldError]) -> bool:
        """Record a stage's problems; true when it found errors."""
        errors = [p for p in problems if not p.warning]
        self.errors += errors
        self.stages += [stage] * len(errors)
        self.warnings += [p for p in problems if p.warning]
        if errors and self.refused_at is None:
            self.refused_at, self.refusal = stage, errors
        return bool(errors)

    @classmethod
    def of(cls, checked: Checked) -> _Report:
        """A report that goes on from what an earlier call found."""
        report = cls()
        report.errors, report.stages = list(checked.errors), list(checked.stages)
        report.warnings = list(checked.warnings)
        report.refused_at, report.refusal = checked.refused_at, list(checked.refusal)
        return report

    def result(self, ws: v1beta1.Workspace | None) -> Checked:
        return Checked(
            ws,
            tuple(self.errors),
            tuple(self.warnings),
            tuple(self.stages),
            self.refused_at,
            tuple(self.refusal),
        )


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


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""


def default_workspace(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the structural defaults of the document's own version (as the API server does)."""
    version = str(doc.get("apiVersion", "")).rpartition("/")[2]
    out = copy.deepcopy(dict(doc))
    schema = workspace_structural_schema(version if version in WORKSPACE_TYPES else STORAGE_VERSION)
    schema.apply_defaults(out)
    return out


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


def _run(
    doc: Mapping[str, Any], report: _Report, duplicates: Sequence[str]
) -> v1beta1.Workspace | None:
    """The API server's steps; the typed storage-version object when it can be built."""
    version, errors = _version_of(doc)
    if report.add(Stage.DECODE, errors) or version is None:
        return None
    obj = copy.deepcopy(dict(doc))
    problem = object_meta_type_error(obj.get("metadata"))
    if problem is not None:
        report.add(Stage.DECODE, [problem])
        return None
    schema = workspace_structural_schema(version)
    unknown: list[str] = []
    schema.prune(obj, "", unknown, root=True)
    report.add(
        Stage.DECODE,
        [duplicate_field(path, "the key is given more than once") for path in duplicates]
        + schema.unknown_field_errors(unknown),
    )
    schema.apply_defaults(obj)
    meta = obj.setdefault("metadata", {})
    if not meta.get("namespace"):
        meta["namespace"] = "default"  # the request's namespace, as kubectl sends it
    checked_meta = dict(meta)
    if not checked_meta.get("name") and checked_meta.get("generateName"):
        checked_meta["name"] = f"{checked_meta['generateName']}xxxxx"  # as the server generates
    cls = WORKSPACE_TYPES[version]
    report.add(
        Stage.SCHEMA,
        validate_object_meta(checked_meta, namespaced=True)
        + [with_fix(e, cls) for e in schema.validate(obj, "", root=True)],
    )
    storage = workspace_structural_schema(STORAGE_VERSION)
    convert_none(obj, _STORAGE_API_VERSION, storage)
    storage.apply_defaults(obj)
    try:
        return construct(obj, v1beta1.Workspace)
    except InvalidSpecError as error:
        reported = {e.field for e in report.errors}
        report.add(Stage.SCHEMA, [e for e in error.errors if e.field not in reported])
        return None


def decode_workspace(doc: Mapping[str, Any], *, duplicates: Sequence[str] = ()) -> Checked:
    """The API server's decode and schema stages (1-4), once: the typed storage-version object.

    ``duplicates`` are the paths of keys the document gave twice (from
    :func:`kaito.apimachinery.decode_yaml`), strict-decoding errors like unknown fields. The
    result is what :func:`check_decoded` validates; ``workspace`` is ``None`` when no typed
    object could be built.
    """
    report = _Report()
    return report.result(_run(doc, report, duplicates))


def check_decoded(
    decoded: Checked, ctx: ValidationContext | None = None, *, old: Checked | None = None
) -> Checked:
    """Run the Workspace rules (stage 5) on what :func:`decode_workspace` returned.

    ``old`` (decoded the same way) makes it an update.
    """
    ws = decoded.workspace
    if ws is None:
        return decoded
    ctx = ctx or ValidationContext()
    if old is not None and old.workspace is not None:
        problems = validate_workspace_update(old.workspace, ws, ctx)
    else:
        problems = validate_workspace(ws, ctx)
    # The API server never calls the webhook on an object its schema refused; here the rules
    # still run on what could be built, so every problem is told at once (each path once).
    report = _Report.of(decoded)
    reported = {e.field for e in decoded.errors}
    report.add(Stage.ADMISSION, [p for p in problems if p.field not in reported])
    return report.result(ws)


def check_workspace(
    doc: Mapping[str, Any],
    ctx: ValidationContext | None = None,
    *,
    old: Mapping[str, Any] | None = None,
    duplicates: Sequence[str] = (),
) -> Checked:
    """Check a Workspace document as the API server and its admission webhook would.

    :func:`decode_workspace` then :func:`check_decoded`; ``old`` makes it an update.
    """
    return check_decoded(
        decode_workspace(doc, duplicates=duplicates),
        ctx,
        old=None if old is None else decode_workspace(old),
    )
