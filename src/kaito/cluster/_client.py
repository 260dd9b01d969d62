"""An in-process client of the cluster's API (top layer): the same semantics as over HTTP
(admission, validation, resource versions), with dicts in and out and no socket in between."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kaito.apimachinery import DecodeError, decode_yaml_stream
from kaito.cluster._errors import StatusError, bad_request
from kaito.cluster._json import Obj
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import DeleteOptions, ListOptions, RequestContext, RestApi, WriteOptions
from kaito.cluster._selectors import parse_field_selector, parse_label_selector

__all__ = ("LocalClient",)

_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def _yaml_documents(text: str | bytes) -> list[Any]:
    """Every document of a YAML stream (``kaito.apimachinery``'s decoder and limits)."""
    docs = []
    for decoded in decode_yaml_stream(text):
        if isinstance(decoded, DecodeError):
            raise bad_request(decoded.message)
        docs.append(decoded.value)
    return docs


def _documents(source: str | os.PathLike[str] | Obj | Iterable[Obj]) -> list[Obj]:
    if isinstance(source, dict):
        docs: list[Any] = [source]
    elif isinstance(source, str) and (
        "\n" in source or source.lstrip().startswith(("apiVersion", "{", "---"))
    ):
        docs = _yaml_documents(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            if path.is_dir()
            else [path]
        )
        docs = [doc for file in files for doc in _yaml_documents(file.read_bytes())]
    else:
        docs = list(source)
    result: list[Obj] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind", "").endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            result.extend(doc["items"])
        elif isinstance(doc, dict):
            result.append(doc)
    return result


class LocalClient:
    """Typed-enough access to the API from the process that runs the cluster (``cluster.client``).

    Errors are :class:`~kaito.cluster.StatusError` with the same code, reason and message an HTTP
    client would get.
    """

    def __init__(self, rest: RestApi, *, user: str = "system:admin") -> None:
        self._rest = rest
        self._user = user

    def _ctx(self) -> RequestContext:
        return RequestContext(user=self._user)

    def resource(self, api_version: str, kind: str) -> ResourceType:
        """The served resource for ``apiVersion`` and ``kind``.

        Raises:
            StatusError: 404 when the kind is not served (for a custom kind: install its CRD first).
        """
        group, _, version = api_version.rpartition("/")
        rt = self._rest.catalog.by_kind(group, version, kind)
        if rt is None:
            raise StatusError(
                404,
                "NotFound",
                f'no matches for kind "{kind}" in version "{api_version}"; install its '
                "CustomResourceDefinition first",
            )
        return rt

    async def create(self, obj: Obj, *, namespace: str | None = None, dry_run: bool = False) -> Obj:
        """Create ``obj``; its namespace defaults to ``namespace`` or ``default``."""
        rt = self.resource(obj.get("apiVersion", ""), obj.get("kind", ""))
        ns = (
            namespace
            or (obj.get("metadata") or {}).get("namespace")
            or ("default" if rt.namespaced else "")
        )
        stored = await self._rest.create(
            rt, ns, obj, WriteOptions(dry_run=dry_run, field_manager="kaito-testing"), self._ctx()
        )
        return self._rest.decode(rt, stored)

    async def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj:
        """Read one object. Raises ``StatusError`` 404."""
        rt = self.resource(api_version, kind)
        return self._rest.decode(rt, await self._rest.get(rt, namespace, name))

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        """Every matching object, in key order."""
        rt = self.resource(api_version, kind)
        options = ListOptions(
            label_selector=parse_label_selector(label_selector),
            field_selector=parse_field_selector(
                field_selector, rt.all_selectable_fields, custom=rt.custom
            ),
        )
        result = await self._rest.list(rt, namespace, options)
        return [self._rest.decode(rt, s) for s in result.items]

    async def update(self, obj: Obj, *, subresource: str = "") -> Obj:
        """Replace an object (PUT); ``metadata.resourceVersion`` is the precondition."""
        rt = self.resource(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        stored, _ = await self._rest.update(
            rt,
            meta.get("namespace", ""),
            meta.get("name", ""),
            obj,
            options=WriteOptions(field_manager="kaito-testing"),
            ctx=self._ctx(),
            subresource=subresource,
        )
        return self._rest.decode(rt, stored)

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: str = "merge",
        subresource: str = "",
        field_manager: str = "kaito-testing",
        force: bool = False,
    ) -> Obj:
        """Patch an object; ``patch_type`` is ``merge``, ``json``, ``strategic`` or ``apply``."""
        rt = self.resource(api_version, kind)
        content_type = _PATCH_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"patch_type={patch_type!r} is not one of {sorted(_PATCH_TYPES)}")
        stored, _ = await self._rest.patch(
            rt,
            namespace,
            name,
            content_type,
            patch,
            options=WriteOptions(field_manager=field_manager, force=force),
            ctx=self._ctx(),
            subresource=subresource,
        )
        return self._rest.decode(rt, stored)

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        propagation_policy: str | None = None,
    ) -> Obj | None:
        """Delete an object; returns it while finalizers keep it, ``None`` once it is gone."""
        rt = self.resource(api_version, kind)
        outcome = await self._rest.delete(
            rt, namespace, name, DeleteOptions(propagation_policy=propagation_policy), self._ctx()
        )
        if outcome.deleted or outcome.obj is None:
            return None
        return self._rest.decode(rt, outcome.obj)

    async def apply(
        self, obj: Obj, *, field_manager: str = "kaito-testing", force: bool = True
    ) -> Obj:
        """Server-side apply one object (create or update)."""
        rt = self.resource(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ("default" if rt.namespaced else "")
        if rt.namespaced:
            obj = {**obj, "metadata": {**meta, "namespace": namespace}}
        stored, _ = await self._rest.patch(
            rt,
            namespace,
            meta.get("name", ""),
            "application/apply-patch+yaml",
            obj,
            options=WriteOptions(field_manager=field_manager, force=force),
            ctx=self._ctx(),
        )
        return self._rest.decode(rt, stored)

    async def apply_manifests(
        self,
        source: str | os.PathLike[str] | Obj | Iterable[Obj],
        *,
        field_manager: str = "kaito-testing",
    ) -> builtins.list[Obj]:
        """Server-side apply every object of YAML text, a file, a directory or dicts, in order."""
        return [await self.apply(doc, field_manager=field_manager) for doc in _documents(source)]
