"""Workspaces decoded once: the typed storage-version object, cached per (uid, resourceVersion).

Controller layer. A stored object never changes under a resourceVersion, so the reconciler
decodes each version it sees once (defaults, structure, conversion: ``kaito.api``'s
:func:`~kaito.api.decode_workspace`, the same step the admission webhook takes) and every later
pass over that version reuses the typed form. The cache is a small LRU: a Workspace whose status
the controller just wrote comes back under a new resourceVersion, and the old entry ages out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from kaito.api import Checked, decode_workspace, structure_lenient
from kaito.api.v1beta1 import Workspace
from kaito.controllers._naming import revision_inputs, revision_of

__all__ = ("DEFAULT_DECODE_CACHE_SIZE", "DecodedWorkspace", "WorkspaceDecoder")

#: Entries the reconciler's cache keeps: about two versions of every Workspace in a busy
#: thousand-Workspace cluster; an evicted version is decoded again when it is read.
DEFAULT_DECODE_CACHE_SIZE: Final = 2048


class DecodedWorkspace:
    """One stored version of a Workspace: its JSON, its typed form, what decoding found."""

    __slots__ = ("_revision_inputs", "checked", "raw", "workspace")

    def __init__(self, raw: Mapping[str, Any], checked: Checked) -> None:
        self.raw = raw
        self.checked = checked
        #: The typed storage version; when decoding failed outright, the leniently parsed rest
        #: (enough to write the status that says why).
        self.workspace: Workspace = (
            checked.workspace
            if checked.workspace is not None
            else structure_lenient(raw, Workspace)[0]
        )
        self._revision_inputs: dict[str, Any] | None = None

    def revision(self, *extra: Any) -> str:
        """:func:`~kaito.controllers.revision_hash` of this version, its inputs computed once."""
        if self._revision_inputs is None:
            self._revision_inputs = revision_inputs(self.workspace)
        return revision_of(self._revision_inputs, *extra)


class WorkspaceDecoder:
    """Decodes Workspace JSON once per (uid, resourceVersion, apiVersion); a bounded LRU.

    Objects without a uid or a resourceVersion (not stored yet) are decoded every time.
    """

    def __init__(self, max_size: int = DEFAULT_DECODE_CACHE_SIZE) -> None:
        if max_size < 1:
            raise ValueError(f"max_size={max_size} must be at least 1")
        self.max_size = max_size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str, str], DecodedWorkspace] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def decode(self, raw: Mapping[str, Any]) -> DecodedWorkspace:
        """The decoded form of ``raw``, from the cache when this version was decoded before."""
        meta = raw.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not uid or not version:
            self.misses += 1
            return DecodedWorkspace(raw, decode_workspace(raw))
        key = (str(uid), str(version), str(raw.get("apiVersion", "")))
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        decoded = DecodedWorkspace(raw, decode_workspace(raw))
        self._entries[key] = decoded
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
        return decoded
