"""The ``OwnerReferencesPermissionEnforcement`` admission plugin, as kube-apiserver's
``plugin/pkg/admission/gc`` applies it (OpenShift and hardened clusters turn it on): changing an
object's ``ownerReferences`` needs ``delete`` on the object (except when creating it), and setting
``blockOwnerDeletion`` on a reference needs ``update`` on the owner's ``finalizers`` subresource,
because it delays the owner's deletion."""

from __future__ import annotations

from typing import Any

from kaito.cluster._auth._rbac import Attributes, Authorizer
from kaito.cluster._auth._user import MASTERS, UserInfo
from kaito.cluster._errors import forbidden
from kaito.cluster._json import Obj
from kaito.cluster._resource_types import Catalog, ResourceType
from kaito.cluster._rest import Admission, AdmissionAttributes

__all__ = ("OWNER_REFERENCES_PLUGIN", "OwnerReferencesGuard")

#: The plugin's name in ``--enable-admission-plugins``.
OWNER_REFERENCES_PLUGIN = "OwnerReferencesPermissionEnforcement"
#: Writes the plugin never checks (kube-apiserver's list: the kubelet's pod status updates).
_EXEMPT = frozenset({("", "pods", "status")})


def _refs(obj: Obj | None) -> list[dict[str, Any]]:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return [r for r in refs if isinstance(r, dict)]


def _blocking(new: Obj, old: Obj | None) -> list[dict[str, Any]]:
    """References of ``new`` that block their owner's deletion and did not before."""
    before = {r.get("uid"): bool(r.get("blockOwnerDeletion")) for r in _refs(old)}
    return [r for r in _refs(new) if r.get("blockOwnerDeletion") and not before.get(r.get("uid"))]


class OwnerReferencesGuard:
    """An admission step (before the chain it wraps) enforcing who may set owner references."""

    def __init__(self, inner: Admission, authorizer: Authorizer, catalog: Catalog) -> None:
        self._inner = inner
        self._authorizer = authorizer
        self._catalog = catalog

    def _guards(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        return (
            operation in ("CREATE", "UPDATE") and (rt.group, rt.plural, subresource) not in _EXEMPT
        )

    def active(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        """True for creates and updates, or the wrapped chain's answer."""
        return self._guards(rt, operation, subresource) or self._inner.active(
            rt, operation, subresource
        )

    async def mutate(self, attributes: AdmissionAttributes, obj: Obj) -> Obj:
        """The wrapped chain's mutation."""
        if self._inner.active(attributes.rt, attributes.operation, attributes.subresource):
            return await self._inner.mutate(attributes, obj)
        return obj

    async def validate(self, attributes: AdmissionAttributes, obj: Obj | None) -> None:
        """Refuse owner references the requester may not set, then run the wrapped chain."""
        rt = attributes.rt
        if obj is not None and self._guards(rt, attributes.operation, attributes.subresource):
            await self._check(attributes, obj)
        if self._inner.active(rt, attributes.operation, attributes.subresource):
            await self._inner.validate(attributes, obj)

    async def _check(self, attributes: AdmissionAttributes, obj: Obj) -> None:
        context = attributes.context
        user = UserInfo(context.user, uid=context.uid, groups=tuple(context.groups))
        if MASTERS in user.groups:
            return
        old = attributes.old
        if _refs(obj) == _refs(old):
            return
        rt = attributes.rt
        name = attributes.name or str((obj.get("metadata") or {}).get("name") or "")
        if attributes.operation != "CREATE":
            # Creating a thing implies the power to never have created it; changing the
            # references of an existing one needs the power to delete it.
            decision = await self._authorizer.authorize(
                Attributes(user, "delete", api_group=rt.group, api_version=rt.version,
                           resource=rt.plural, namespace=attributes.namespace, name=name)
            )  # fmt: skip
            if not decision.allowed:
                raise forbidden(
                    rt.group, rt.plural, name,
                    f"cannot set an ownerRef on a resource you can't delete: {decision.reason}, "
                    "<nil>",
                )  # fmt: skip
        for ref in _blocking(obj, old):
            group, _, version = str(ref.get("apiVersion") or "").rpartition("/")
            owner = self._catalog.by_kind(group, version, str(ref.get("kind") or ""))
            if owner is None:
                raise forbidden(
                    rt.group, rt.plural, name,
                    "cannot set blockOwnerDeletion in this case because cannot find RESTMapping "
                    f"for APIVersion {ref.get('apiVersion')} Kind {ref.get('kind')}: no matches "
                    f'for kind "{ref.get("kind")}" in version "{ref.get("apiVersion")}"',
                )  # fmt: skip
            decision = await self._authorizer.authorize(
                Attributes(user, "update", api_group=owner.group, api_version=owner.version,
                           resource=owner.plural, subresource="finalizers",
                           namespace=attributes.namespace, name=str(ref.get("name") or ""))
            )  # fmt: skip
            if not decision.allowed:
                raise forbidden(
                    rt.group, rt.plural, name,
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                    f"you can't set finalizers on: {decision.reason}, <nil>",
                )  # fmt: skip
