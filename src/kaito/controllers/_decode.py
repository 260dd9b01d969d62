"""Workspaces decoded once: the typed storage-version object, cached per (uid, resourceVersion).

Controller layer. A stored object never changes under a resourceVersion, so the reconciler
decodes each version it sees once (defaults, structure, conversion: ``kaito.api``'s
:func:`~kaito.api.decode_workspace`, the same step the admission webhook takes) and every later
pass over that version reuses the typed form. The cache holds the newest version seen of each
Workspace, at most ``max_size`` Workspaces, least recently read first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from kaito.api import Checked, decode_workspace, structure_lenient
from kaito.api.v1beta1 import Workspace
from kaito.controllers._naming import revision_inputs, revision_of
from kaito.controllers._revisions import spec_hash

__all__ = ("DEFAULT_DECODE_CACHE_SIZE", "DecodedWorkspace", "WorkspaceDecoder")

#: Workspaces the reconciler's cache keeps decoded (one version each); the least recently read
#: goes first, and is decoded again when it is read.
DEFAULT_DECODE_CACHE_SIZE: Final = 4096


class _Decoded:
    """What decoding one stored version gave (shared by every pass over that version)."""

    __slots__ = (
        "api_version",
        "checked",
        "resource_version",
        "revision_inputs",
        "spec_hash",
        "workspace",
    )

    def __init__(self, raw: Mapping[str, Any], resource_version: str, api_version: str) -> None:
        self.resource_version = resource_version
        self.api_version = api_version
        self.checked = decode_workspace(raw)
        # When decoding failed outright, the leniently parsed rest: enough to report on.
        self.workspace: Workspace = (
            self.checked.workspace
            if self.checked.workspace is not None
            else structure_lenient(raw, Workspace)[0]
        )
        self.revision_inputs: dict[str, Any] | None = None
        self.spec_hash: str | None = None


class DecodedWorkspace:
    """One stored version of a Workspace: its JSON, its typed form, what decoding found."""

    __slots__ = ("_decoded", "raw")

    def __init__(self, raw: Mapping[str, Any], decoded: _Decoded) -> None:
        self.raw = raw
        self._decoded = decoded

    @property
    def workspace(self) -> Workspace:
        """The typed storage version (when decoding failed outright, the leniently parsed rest:
        enough to write the status that says why)."""
        return self._decoded.workspace

    @property
    def checked(self) -> Checked:
        """What :func:`~kaito.api.decode_workspace` returned (the input of ``check_decoded``)."""
        return self._decoded.checked

    def spec_hash(self) -> str:
        """:func:`~kaito.controllers._revisions.spec_hash` of this version, computed once."""
        decoded = self._decoded
        if decoded.spec_hash is None:
            decoded.spec_hash = spec_hash(decoded.workspace)
        return decoded.spec_hash

    def revision(self, *extra: Any) -> str:
        """:func:`~kaito.controllers.revision_hash` of this version, its inputs computed once."""
        decoded = self._decoded
        if decoded.revision_inputs is None:
            decoded.revision_inputs = revision_inputs(decoded.workspace)
        return revision_of(decoded.revision_inputs, *extra)


class WorkspaceDecoder:
    """Decodes Workspace JSON once per (uid, resourceVersion, apiVersion); a bounded LRU.

    It keeps one version per Workspace (uid): a newer resourceVersion replaces the entry, so a
    superseded version is never held. Objects without a uid or a resourceVersion (not stored
    yet) are decoded every time.
    """

    def __init__(self, max_size: int = DEFAULT_DECODE_CACHE_SIZE) -> None:
        if max_size < 1:
            raise ValueError(f"max_size={max_size} must be at least 1")
        self.max_size = max_size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, _Decoded] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def decode(self, raw: Mapping[str, Any]) -> DecodedWorkspace:
        """The decoded form of ``raw``, from the cache when this version was decoded before."""
        meta = raw.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        uid, version = str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
        api_version = str(raw.get("apiVersion", ""))
        if not uid or not version:
            self.misses += 1
            return DecodedWorkspace(raw, _Decoded(raw, version, api_version))
        found = self._entries.get(uid)
        if (
            found is not None
            and found.resource_version == version
            and found.api_version == api_version
        ):
            self.hits += 1
            self._entries.move_to_end(uid)
            return DecodedWorkspace(raw, found)
        self.misses += 1
        decoded = _Decoded(raw, version, api_version)
        self._entries[uid] = decoded
        self._entries.move_to_end(uid)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
        return DecodedWorkspace(raw, decoded)

    def forget(self, uid: str) -> None:
        """Drop the Workspace ``uid`` (it is gone)."""
        self._entries.pop(uid, None)
