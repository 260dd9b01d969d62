"""The resource catalog: every served group/version/resource, built-in or custom, with the rules
the REST layer applies to it (scope, subresources, schema, generation, strategy hooks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from kaito.apimachinery import FieldError, NameValidator, Schema, dns1123_subdomain_problems
from kaito.cluster._json import Obj
from kaito.cluster._store import GroupResource

__all__ = (
    "Catalog",
    "Codec",
    "PrinterColumn",
    "ResourceType",
    "ScalePaths",
    "Strategy",
    "field_value",
)

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


class Strategy:
    """Per-kind write hooks; this base does nothing, which is right for custom resources.

    Built-in kinds subclass it to default fields, reset status on create and validate what the
    schema cannot express.
    """

    def default(self, obj: Obj) -> None:
        """Fill defaulted fields in place (runs on every write before admission)."""

    def prepare_create(self, obj: Obj) -> None:
        """Adjust a new object before validation (reset status, allocate addresses)."""

    def prepare_update(self, new: Obj, old: Obj) -> None:
        """Adjust an updated object before validation."""

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        """Kind-specific validation beyond the schema."""
        del obj, old
        return []


class Codec:
    """Converts between a served version's wire form and the stored form (both in place)."""

    def to_storage(self, obj: Obj) -> None:
        """Rewrite a request object into the stored form."""

    def from_storage(self, obj: Obj) -> None:
        """Rewrite a stored object into this version's form."""


@attrs.frozen
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry (or a built-in printer's column)."""

    name: str
    type: str
    json_path: str = ""
    description: str = ""
    priority: int = 0
    format: str = ""


@attrs.frozen
class ScalePaths:
    """Where the ``scale`` subresource reads and writes replicas."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str = ""


def _always_valid(value: str) -> list[str]:
    del value
    return []


@attrs.frozen(eq=False)
class ResourceType:
    """One served ``group/version/resource``."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    storage_version: str = ""
    custom: bool = False
    has_generation: bool = False
    schema: Schema | None = None
    """The structural schema of this version (prune, default, validate)."""
    openapi: Obj | None = None
    """The OpenAPI v3 schema published for this version (explain, client-side apply)."""
    printer_columns: tuple[PrinterColumn, ...] | None = None
    """Custom resources' ``additionalPrinterColumns``; ``None`` uses the built-in printer."""
    selectable_fields: tuple[str, ...] = ()
    """Field-selector paths beyond ``metadata.name`` and ``metadata.namespace``."""
    name_validator: NameValidator = dns1123_subdomain_problems
    allow_unconditional_update: bool = True
    allow_create_on_update: bool = False
    preserve_status_on_update: bool = True
    """With a ``status`` subresource, main-resource writes keep the old status."""
    scale: ScalePaths | None = None
    strategy: Strategy = attrs.field(factory=Strategy)
    verbs: tuple[str, ...] = STANDARD_VERBS
    list_kind_override: str = ""
    bucket: GroupResource | None = None
    """Stored in another resource's bucket (``events.k8s.io`` events live with core events)."""
    codec: Codec | None = None
    """Conversion to and from the stored form when it differs from this version's."""

    @property
    def gr(self) -> GroupResource:
        """The storage bucket."""
        return self.bucket or GroupResource(self.group, self.plural)

    @property
    def api_version(self) -> str:
        """``group/version`` (``v1`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_api_version(self) -> str:
        """The ``apiVersion`` objects are stored with."""
        version = self.storage_version or self.version
        return f"{self.group}/{version}" if self.group else version

    @property
    def list_kind(self) -> str:
        """``WorkspaceList``."""
        return self.list_kind_override or f"{self.kind}List"

    @property
    def qualified_kind(self) -> str:
        """``Workspace.kaito.sh`` or ``Pod``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def all_selectable_fields(self) -> tuple[str, ...]:
        """Every field a field selector may name."""
        base = ("metadata.name", "metadata.namespace") if self.namespaced else ("metadata.name",)
        return base + self.selectable_fields


def field_value(obj: Obj, path: str) -> str:
    """The string form of a dotted field path, ``""`` when absent (field-selector semantics)."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
        if node is None:
            return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


class Catalog:
    """Every served resource, by URL path and by kind; bumps ``generation`` on any change."""

    def __init__(self) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str, str], ResourceType] = {}
        self._group_order: list[str] = []
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []

    def add(self, rt: ResourceType) -> None:
        """Serve ``rt`` (replacing the same group/version/resource)."""
        self._by_path[(rt.group, rt.version, rt.plural)] = rt
        self._by_kind[(rt.group, rt.version, rt.kind)] = rt
        if rt.group not in self._group_order:
            self._group_order.append(rt.group)
        self._changed()

    def remove(self, group: str, plural: str) -> None:
        """Stop serving every version of a resource."""
        for key, rt in list(self._by_path.items()):
            if rt.group == group and rt.plural == plural:
                del self._by_path[key]
                self._by_kind.pop((rt.group, rt.version, rt.kind), None)
        if (
            not any(rt.group == group for rt in self._by_path.values())
            and group in self._group_order
        ):
            self._group_order.remove(group)
        self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change (discovery and OpenAPI caches)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self.generation += 1
        for listener in self._listeners:
            listener()

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource served at ``/apis/group/version/plural``."""
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        """The resource of a group/version/kind."""
        return self._by_kind.get((group, version, kind))

    def storage_type(self, gr: GroupResource) -> ResourceType | None:
        """The version a bucket is stored in."""
        for rt in self._by_path.values():
            if (
                rt.group == gr.group
                and rt.plural == gr.resource
                and rt.version == (rt.storage_version or rt.version)
            ):
                return rt
        return None

    def versions(self, group: str, plural: str) -> list[ResourceType]:
        """Every served version of a resource."""
        return [rt for rt in self._by_path.values() if rt.group == group and rt.plural == plural]

    def groups(self) -> list[str]:
        """Group names in discovery order: core first, built-ins, then custom groups."""
        return list(self._group_order)

    def group_versions(self, group: str) -> list[str]:
        """Served versions of a group, preferred first (kube version priority)."""
        versions = {rt.version for rt in self._by_path.values() if rt.group == group}
        return sorted(versions, key=version_priority)

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        """Resources of one group/version, in registration order."""
        return [rt for (g, v, _), rt in self._by_path.items() if g == group and v == version]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_path.values()))

    def buckets(self) -> list[GroupResource]:
        """Every storage bucket served."""
        seen: dict[GroupResource, None] = {}
        for rt in self._by_path.values():
            seen.setdefault(rt.gr, None)
        return list(seen)


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of Kubernetes versions: GA before beta before alpha, higher numbers first."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, version)
