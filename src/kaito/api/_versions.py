"""The served versions of the Workspace kind and the conversion between them.

API layer (pure functions). Conversion follows upstream's ``None`` strategy
(:func:`kaito.apimachinery.convert_none`): the API server rewrites ``apiVersion`` and prunes the
fields the target version does not declare. ``v1alpha1`` -> ``v1beta1`` therefore loses nothing;
``v1beta1`` -> ``v1alpha1`` drops ``resource.partition``, ``status.state``,
``status.targetNodeCount`` and ``status.performance``, and says which.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from kaito.api import v1alpha1, v1beta1
from kaito.api._schema import openapi_schema
from kaito.api.constants import GROUP, STORAGE_VERSION
from kaito.apimachinery import Schema, compile_schema, convert_none

__all__ = (
    "WORKSPACE_TYPES",
    "Workspace",
    "convert_workspace",
    "workspace_schema",
    "workspace_structural_schema",
    "workspace_type",
)

Workspace = v1alpha1.Workspace | v1beta1.Workspace

WORKSPACE_TYPES: Final[Mapping[str, type[v1alpha1.Workspace] | type[v1beta1.Workspace]]] = {
    "v1alpha1": v1alpha1.Workspace,
    "v1beta1": v1beta1.Workspace,
}


def workspace_type(api_version: str) -> type[v1alpha1.Workspace] | type[v1beta1.Workspace] | None:
    """The Workspace class for ``kaito.sh/<version>``, or None when not served."""
    group, _, version = api_version.rpartition("/")
    if group != GROUP:
        return None
    return WORKSPACE_TYPES.get(version)


@cache
def workspace_schema(version: str) -> Mapping[str, Any]:
    """The ``openAPIV3Schema`` of a served version."""
    return openapi_schema(WORKSPACE_TYPES[version])


@cache
def workspace_structural_schema(version: str) -> Schema:
    """The compiled structural schema of a served version (what the API server applies)."""
    return compile_schema(workspace_schema(version))


def convert_workspace(
    doc: Mapping[str, Any], to_version: str = STORAGE_VERSION
) -> tuple[dict[str, Any], list[str]]:
    """Convert a Workspace document to kaito.sh/<to_version>; return it and the dropped paths."""
    if to_version not in WORKSPACE_TYPES:
        raise ValueError(
            f"version {to_version!r} is not served; use one of {sorted(WORKSPACE_TYPES)}"
        )
    out = copy.deepcopy(dict(doc))
    dropped = convert_none(out, f"{GROUP}/{to_version}", workspace_structural_schema(to_version))
    return out, dropped
