"""OpenAPI documents: ``/openapi/v3`` (an index and one document per group-version, what
``kubectl apply`` and ``kubectl explain`` read) and ``/openapi/v2`` as JSON."""

from __future__ import annotations

import hashlib
from typing import Any

from kaito.cluster._json import Obj, dumps
from kaito.cluster._resource_types import Catalog, ResourceType

__all__ = ("OpenApi", "definition_name")

_WRITE_PARAMS: dict[str, Obj] = {
    name: {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": kind, "uniqueItems": True},
    }
    for name, kind, description in (
        ("dryRun", "string", "When present, indicates that modifications should not be persisted."),
        (
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these "
            "changes.",
        ),
        (
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request "
            "containing unknown or duplicate fields.",
        ),
        ("force", "boolean", 'Force is going to "force" Apply requests.'),
    )
}
_V2_UNSUPPORTED = ("nullable", "anyOf", "oneOf", "allOf", "not", "x-kubernetes-validations")


def definition_name(rt: ResourceType) -> str:
    """``io.k8s.api.apps.v1.Deployment`` for built-ins, ``sh.kaito.v1beta1.Workspace`` for CRDs."""
    if rt.custom:
        return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"
    group = rt.group or "core"
    short = group.split(".")[0] if group.endswith(".k8s.io") or "." not in group else group
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{rt.version}.{rt.kind}"
    return f"io.k8s.api.{short}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> list[Obj]:
    return [{"group": rt.group, "kind": rt.kind, "version": rt.version}]


_CREATE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")


def _operation(rt: ResourceType, action: str, verb: str, params: tuple[str, ...]) -> Obj:
    """One path operation; kubectl reads ``parameters`` to learn what the server supports."""
    ref = {"$ref": f"#/components/schemas/{definition_name(rt)}"}
    return {
        "operationId": f"{verb}{rt.kind}",
        "parameters": [_WRITE_PARAMS[p] for p in params],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt)[0],
    }


def _strip_v2(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_v2(v) for k, v in schema.items() if k not in _V2_UNSUPPORTED}
    if isinstance(schema, list):
        return [_strip_v2(v) for v in schema]
    return schema


class OpenApi:
    """Builds and caches OpenAPI documents of a :class:`Catalog`."""

    def __init__(self, catalog: Catalog, version: str) -> None:
        self._catalog = catalog
        self._version = version
        self._cache: dict[Any, bytes] = {}
        self._generation = -1

    def _fresh(self) -> None:
        if self._generation != self._catalog.generation:
            self._cache.clear()
            self._generation = self._catalog.generation

    @staticmethod
    def _path(group: str, version: str) -> str:
        return f"apis/{group}/{version}" if group else f"api/{version}"

    def _gv_document(self, group: str, version: str) -> bytes | None:
        self._fresh()
        key = ("gv", group, version)
        if key not in self._cache:
            types = self._catalog.in_group_version(group, version)
            if not types:
                return None
            schemas: Obj = {}
            paths: Obj = {}
            for rt in types:
                if rt.openapi is None:
                    continue
                schemas[definition_name(rt)] = {
                    **rt.openapi,
                    "x-kubernetes-group-version-kind": _gvk(rt),
                }
                prefix = "/" + self._path(group, version)
                scope = (
                    f"{prefix}/namespaces/{{namespace}}/{rt.plural}"
                    if rt.namespaced
                    else f"{prefix}/{rt.plural}"
                )
                paths[scope] = {
                    "get": _operation(rt, "list", "list", ()),
                    "post": _operation(rt, "post", "create", _CREATE_PARAMS),
                }
                paths[f"{scope}/{{name}}"] = {
                    "get": _operation(rt, "get", "read", ()),
                    "put": _operation(rt, "put", "replace", _CREATE_PARAMS),
                    "patch": _operation(rt, "patch", "patch", (*_CREATE_PARAMS, "force")),
                    "delete": _operation(rt, "delete", "delete", ("dryRun",)),
                }
            document = {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": self._version},
                "paths": paths,
                "components": {"schemas": schemas},
            }
            self._cache[key] = dumps(document)
        return self._cache[key]

    def v3_index(self) -> bytes:
        """``/openapi/v3``: one entry per group-version with a content hash."""
        self._fresh()
        if "index" not in self._cache:
            paths: Obj = {}
            for group in self._catalog.groups():
                for version in self._catalog.group_versions(group):
                    document = self._gv_document(group, version)
                    if document is None:
                        continue
                    digest = hashlib.sha512(document).hexdigest()[:128].upper()
                    path = self._path(group, version)
                    paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
            self._cache["index"] = dumps({"paths": paths})
        return self._cache["index"]

    def v3_document(self, path: str) -> bytes | None:
        """``/openapi/v3/apis/<group>/<version>`` (or ``api/v1``)."""
        parts = path.split("/")
        if parts[:1] == ["api"] and len(parts) == 2:
            return self._gv_document("", parts[1])
        if parts[:1] == ["apis"] and len(parts) == 3:
            return self._gv_document(parts[1], parts[2])
        return None

    def v2(self) -> bytes:
        """``/openapi/v2`` as JSON (Swagger 2.0 definitions with group-version-kinds)."""
        self._fresh()
        if "v2" not in self._cache:
            definitions = {
                definition_name(rt): {
                    **_strip_v2(rt.openapi),
                    "x-kubernetes-group-version-kind": _gvk(rt),
                }
                for rt in self._catalog
                if rt.openapi is not None
            }
            self._cache["v2"] = dumps(
                {
                    "swagger": "2.0",
                    "info": {"title": "Kubernetes", "version": self._version},
                    "paths": {},
                    "definitions": definitions,
                }
            )
        return self._cache["v2"]
