"""Discovery documents: ``/api``, ``/apis``, per group-version resource lists, and aggregated
discovery (``apidiscovery.k8s.io`` v2 and v2beta1), cached until the catalog changes."""

from __future__ import annotations

from typing import Any

from kaito.cluster._json import Obj, dumps
from kaito.cluster._resource_types import Catalog, ResourceType

__all__ = ("Discovery",)

_SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "finalize": ("update",),
    "token": ("create",),
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
}
_STREAMING_KINDS = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}


def _subresource_kind(rt: ResourceType, sub: str) -> tuple[str, str, str]:
    if sub == "scale":
        return "autoscaling", "v1", "Scale"
    if sub == "binding":
        return "", "v1", "Binding"
    if sub == "token":
        return "authentication.k8s.io", "v1", "TokenRequest"
    if sub in _STREAMING_KINDS and rt.group == "" and rt.plural == "pods":
        return "", "v1", _STREAMING_KINDS[sub]
    return rt.group, rt.version, rt.kind


class Discovery:
    """Builds and caches the discovery documents of a :class:`Catalog`."""

    def __init__(self, catalog: Catalog, server_address: str) -> None:
        self._catalog = catalog
        self._address = server_address
        self._cache: dict[Any, bytes] = {}
        self._generation = -1

    def _cached(self, key: Any, build: Any) -> bytes:
        if self._generation != self._catalog.generation:
            self._cache.clear()
            self._generation = self._catalog.generation
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = dumps(build())
        return found

    def api_versions(self) -> bytes:
        """``/api``."""
        return self._cached(
            "api",
            lambda: {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self._address}
                ],
            },
        )

    def _group(self, group: str) -> Obj:
        versions = self._catalog.group_versions(group)
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def api_groups(self) -> bytes:
        """``/apis``."""
        return self._cached(
            "apis",
            lambda: {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g) for g in self._catalog.groups() if g],
            },
        )

    def api_group(self, group: str) -> bytes | None:
        """``/apis/<group>``."""
        if group not in self._catalog.groups() or not group:
            return None
        return self._cached(
            ("group", group), lambda: {"kind": "APIGroup", "apiVersion": "v1", **self._group(group)}
        )

    def resource_list(self, group: str, version: str) -> bytes | None:
        """``/api/v1`` or ``/apis/<group>/<version>``."""
        types = self._catalog.in_group_version(group, version)
        if not types:
            return None

        def build() -> Obj:
            resources: list[Obj] = []
            for rt in types:
                entry: Obj = {
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": list(rt.verbs),
                }
                if rt.short_names:
                    entry["shortNames"] = list(rt.short_names)
                if rt.categories:
                    entry["categories"] = list(rt.categories)
                resources.append(entry)
                for sub in sorted(rt.subresources):
                    sub_group, sub_version, sub_kind = _subresource_kind(rt, sub)
                    sub_entry: Obj = {
                        "name": f"{rt.plural}/{sub}",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": sub_kind,
                        "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get",))),
                    }
                    if (sub_group, sub_version) != (rt.group, rt.version):
                        sub_entry["group"], sub_entry["version"] = sub_group, sub_version
                    resources.append(sub_entry)
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources,
            }

        return self._cached(("resources", group, version), build)

    def aggregated(self, *, legacy: bool, version: str) -> bytes:
        """``/api`` or ``/apis`` as an ``APIGroupDiscoveryList``."""

        def resource(rt: ResourceType) -> Obj:
            entry: Obj = {
                "resource": rt.plural,
                "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "scope": "Namespaced" if rt.namespaced else "Cluster",
                "singularResource": rt.singular,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            subs = []
            for sub in sorted(rt.subresources):
                sub_group, sub_version, sub_kind = _subresource_kind(rt, sub)
                subs.append(
                    {
                        "subresource": sub,
                        "responseKind": {
                            "group": sub_group,
                            "version": sub_version,
                            "kind": sub_kind,
                        },
                        "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get",))),
                    }
                )
            if subs:
                entry["subresources"] = subs
            return entry

        def build() -> Obj:
            groups = [""] if legacy else [g for g in self._catalog.groups() if g]
            items = []
            for group in groups:
                versions = [
                    {
                        "version": v,
                        "resources": [
                            resource(rt) for rt in self._catalog.in_group_version(group, v)
                        ],
                        "freshness": "Current",
                    }
                    for v in self._catalog.group_versions(group)
                ]
                meta: Obj = {"creationTimestamp": None}
                if group:
                    meta["name"] = group
                items.append({"metadata": meta, "versions": versions})
            return {
                "kind": "APIGroupDiscoveryList",
                "apiVersion": f"apidiscovery.k8s.io/{version}",
                "metadata": {},
                "items": items,
            }

        return self._cached(("aggregated", legacy, version), build)
