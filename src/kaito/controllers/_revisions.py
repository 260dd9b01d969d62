"""The revision history of a Workspace's spec: ControllerRevisions, as upstream keeps them.

Controller layer. Each distinct spec (``resource``, ``inference``, ``tuning``) is one
``apps/v1`` ControllerRevision named ``<ws>-<hash[:5]>`` (label ``workspace.kaito.io/name``,
annotation ``workspace.kaito.io/hash``, the three sections as its data), numbered in order; at
most :data:`MAX_REVISION_HISTORY` are kept, oldest deleted first. The Workspace carries the
current ``workspace.kaito.io/hash`` and ``workspace.kaito.io/revision`` annotations, and the
workloads carry the revision number they were rendered from: a workload whose number differs
from the Workspace's is rolled (a StatefulSet) or replaced (a Job).

Idempotent: the revision of a hash is found again by its name, so a pass interrupted between
creating the revision and annotating the Workspace (or run by a restarted manager) reuses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import structlog

from kaito.api import constants as c
from kaito.api import unstructure
from kaito.api.v1beta1 import Workspace
from kaito.controllers._apply import WorkspaceClient
from kaito.controllers._naming import controller_owner_reference
from kaito.controllers._resources import CONTROLLER_REVISIONS, WORKSPACES
from kaito.engine import ApiError, ObjectKey

__all__ = (
    "HASH_ANNOTATION",
    "MAX_REVISION_HISTORY",
    "NAME_LABEL",
    "REVISION_INDEX",
    "RevisionConflictError",
    "controller_revision",
    "index_revisions",
    "revision_name",
    "spec_hash",
    "sync_revision",
)

log = structlog.get_logger(__name__)

HASH_ANNOTATION: Final = "workspace.kaito.io/hash"
NAME_LABEL: Final = "workspace.kaito.io/name"
#: Revisions kept per Workspace (upstream's ``MaxRevisionHistoryLimit``).
MAX_REVISION_HISTORY: Final = 10
#: Store index of ControllerRevisions by ``namespace/<workspace>``.
REVISION_INDEX: Final = "workspace-revision"
_HASH_IN_NAME: Final = 5
_SECTIONS: Final = ("resource", "inference", "tuning")


class RevisionConflictError(Exception):
    """A revision of another spec already holds this spec's name (a 5-digit hash collision)."""


def _sections(ws: Workspace) -> dict[str, Any]:
    wire = unstructure(ws)
    return {key: wire.get(key) for key in _SECTIONS}


def spec_hash(ws: Workspace) -> str:
    """SHA-256 (hex) of the spec sections, each encoded as one JSON line (as upstream's
    ``ComputeHash`` feeds a JSON encoder; our encoding sorts keys, so the value differs from
    upstream's for the same spec, but the same fields take part)."""
    digest = hashlib.sha256()
    for value in _sections(ws).values():
        digest.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def revision_name(workspace: str, hash_: str) -> str:
    """``<ws>-<first 5 hex digits of the hash>``."""
    return f"{workspace}-{hash_[:_HASH_IN_NAME]}"


def index_revisions(obj: Mapping[str, Any]) -> list[str]:
    """Index a ControllerRevision by the ``namespace/name`` of the Workspace it belongs to."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{name}"] if name else []


def controller_revision(ws: Workspace, hash_: str, number: int) -> dict[str, Any]:
    """The ControllerRevision recording this spec as revision ``number``."""
    name = ws.metadata.name or ""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(name, hash_),
            "namespace": ws.metadata.namespace,
            "labels": {NAME_LABEL: name},
            "annotations": {HASH_ANNOTATION: hash_},
            "ownerReferences": [controller_owner_reference(ws)],
        },
        "revision": number,
        "data": _sections(ws),
    }


def _number(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def _hash_of(obj: Mapping[str, Any]) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(HASH_ANNOTATION)
    return str(value) if value is not None else None


async def sync_revision(
    client: WorkspaceClient,
    ws: Workspace,
    history: Iterable[Mapping[str, Any]],
    *,
    hash_: str | None = None,
) -> str:
    """Record the Workspace's spec as a revision and annotate the Workspace; return its number.

    ``history`` is the Workspace's ControllerRevisions as cached; ``hash_`` the spec's
    :func:`spec_hash` when the caller has it already. A Workspace whose annotations
    already name this spec's hash costs nothing; otherwise the revision of this hash is reused
    (going back to an earlier spec gets that spec's number back, as upstream) or created with
    the next number, the oldest revisions beyond :data:`MAX_REVISION_HISTORY` are deleted, and
    the two annotations are merge-patched onto the Workspace.

    Raises:
        RevisionConflictError: another spec's revision holds this spec's name.
    """
    hash_ = hash_ or spec_hash(ws)
    annotations = ws.metadata.annotations or {}
    current = annotations.get(c.ANNOTATION_REVISION)
    if annotations.get(HASH_ANNOTATION) == hash_ and current:
        return current
    namespace, name = ws.metadata.namespace or "default", ws.metadata.name or ""
    revisions = sorted(history, key=_number)
    wanted = revision_name(name, hash_)
    found = next((r for r in revisions if (r.get("metadata") or {}).get("name") == wanted), None)
    if found is None:
        number = (_number(revisions[-1]) + 1) if revisions else 1
        found = await _create(client, controller_revision(ws, hash_, number))
        revisions.append(found)
        await _trim(client, namespace, revisions, keep=wanted)
    if _hash_of(found) != hash_:
        raise RevisionConflictError(
            f"ControllerRevision {namespace}/{wanted} records another spec (hash "
            f"{_hash_of(found)}, this spec's is {hash_}); delete it so it can be recreated"
        )
    number_text = str(_number(found))
    await client.patch(
        WORKSPACES,
        ObjectKey(namespace, name),
        {"metadata": {"annotations": {HASH_ANNOTATION: hash_, c.ANNOTATION_REVISION: number_text}}},
    )
    log.info("workspace_revision", revision=number_text, hash=hash_[:12])
    return number_text


async def _create(client: WorkspaceClient, revision: dict[str, Any]) -> Mapping[str, Any]:
    try:
        return await client.create(CONTROLLER_REVISIONS, revision)
    except ApiError as err:
        if not err.conflict:
            raise
    # Created meanwhile (a pass whose cache had not caught up): read what is there.
    meta = revision["metadata"]
    return await client.get(CONTROLLER_REVISIONS, ObjectKey(meta["namespace"], meta["name"]))


async def _trim(
    client: WorkspaceClient, namespace: str, revisions: list[Mapping[str, Any]], *, keep: str
) -> None:
    """Delete the oldest revisions (never ``keep``) until at most the limit remain."""
    excess = len(revisions) - MAX_REVISION_HISTORY
    for old in revisions:
        if excess <= 0:
            break
        old_name = (old.get("metadata") or {}).get("name", "")
        if old_name == keep:
            continue
        await client.delete(CONTROLLER_REVISIONS, ObjectKey(namespace, old_name))
        excess -= 1
