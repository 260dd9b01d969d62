"""RBAC privilege-escalation prevention, as kube-apiserver's RBAC storage applies it: a user may
write a Role or ClusterRole only with rules they already hold (or the ``escalate`` verb on it),
and bind a role only when they hold its rules (or the ``bind`` verb on it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kaito.cluster._auth._rbac import (
    RBAC_GROUP,
    Attributes,
    Authorizer,
    PolicyRule,
    RbacAuthorizer,
    aggregated_rules,
)
from kaito.cluster._auth._user import MASTERS, UserInfo
from kaito.cluster._errors import StatusError
from kaito.cluster._json import Obj, loads
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest import Admission, AdmissionAttributes
from kaito.cluster._store import GroupResource, Storage

__all__ = ("EscalationGuard", "covers", "uncovered")

_ROLES = {"roles": "Role", "clusterroles": "ClusterRole"}
_BINDINGS = {"rolebindings": "Role", "clusterrolebindings": "ClusterRole"}


def _atoms(rule: PolicyRule) -> Iterator[PolicyRule]:
    """A rule broken into single-verb, single-resource (or single-URL) rules."""
    for verb in rule.verbs:
        for url in rule.non_resource_urls:
            yield PolicyRule((verb,), non_resource_urls=(url,))
        for group in rule.api_groups:
            for resource in rule.resources:
                for name in rule.resource_names or ("",):
                    yield PolicyRule((verb,), (group,), (resource,), (name,) if name else ())


def _covers_one(owner: PolicyRule, atom: PolicyRule) -> bool:
    if "*" not in owner.verbs and atom.verbs[0] not in owner.verbs:
        return False
    if atom.non_resource_urls:
        url = atom.non_resource_urls[0]
        return any(
            candidate in ("*", url) or (candidate.endswith("*") and url.startswith(candidate[:-1]))
            for candidate in owner.non_resource_urls
        )
    if "*" not in owner.api_groups and atom.api_groups[0] not in owner.api_groups:
        return False
    resource = atom.resources[0]
    _, _, subresource = resource.partition("/")
    if not any(
        candidate in ("*", resource) or (subresource and candidate == f"*/{subresource}")
        for candidate in owner.resources
    ):
        return False
    if not owner.resource_names:
        return True
    return bool(atom.resource_names) and atom.resource_names[0] in owner.resource_names


def uncovered(owner: Iterable[PolicyRule], servant: Iterable[PolicyRule]) -> list[PolicyRule]:
    """The parts of ``servant`` that no rule of ``owner`` grants (kube's ``Covers``)."""
    held = list(owner)
    return [atom for rule in servant for atom in _atoms(rule) if not any(
        _covers_one(o, atom) for o in held)]  # fmt: skip


def covers(owner: Iterable[PolicyRule], servant: Iterable[PolicyRule]) -> bool:
    """Whether ``owner`` grants everything ``servant`` grants."""
    return not uncovered(owner, servant)


def _describe(rule: PolicyRule) -> str:
    def quoted(values: tuple[str, ...]) -> str:
        return "[" + " ".join(f'"{v}"' for v in values) + "]"

    if rule.non_resource_urls:
        return f"{{NonResourceURLs:{quoted(rule.non_resource_urls)}, Verbs:{quoted(rule.verbs)}}}"
    names = f", ResourceNames:{quoted(rule.resource_names)}" if rule.resource_names else ""
    return (
        f"{{APIGroups:{quoted(rule.api_groups)}, Resources:{quoted(rule.resources)}{names}, "
        f"Verbs:{quoted(rule.verbs)}}}"
    )


class EscalationGuard:
    """An admission step (before the webhooks it wraps) refusing RBAC writes that would grant
    more than the requester holds. Only with the RBAC authoriser; ``system:masters`` is exempt."""

    def __init__(self, inner: Admission, authorizer: Authorizer, store: Storage) -> None:
        self._inner = inner
        self._authorizer = authorizer
        self._store = store

    def _guards(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        return (
            isinstance(self._authorizer, RbacAuthorizer)
            and rt.group == RBAC_GROUP
            and operation in ("CREATE", "UPDATE")
            and not subresource
        )

    def active(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        """The wrapped chain's answer, or True for RBAC writes under RBAC."""
        return self._guards(rt, operation, subresource) or self._inner.active(
            rt, operation, subresource
        )

    async def mutate(self, attributes: AdmissionAttributes, obj: Obj) -> Obj:
        """The wrapped chain's mutation."""
        if self._inner.active(attributes.rt, attributes.operation, attributes.subresource):
            return await self._inner.mutate(attributes, obj)
        return obj

    async def validate(self, attributes: AdmissionAttributes, obj: Obj | None) -> None:
        """Refuse an escalation, then run the wrapped chain's validation."""
        rt = attributes.rt
        if obj is not None and self._guards(rt, attributes.operation, attributes.subresource):
            context = attributes.context
            user = UserInfo(context.user, uid=context.uid, groups=tuple(context.groups))
            if MASTERS not in user.groups:
                await self._check(rt, attributes.namespace, attributes.name, obj, user)
        if self._inner.active(rt, attributes.operation, attributes.subresource):
            await self._inner.validate(attributes, obj)

    async def _check(
        self, rt: ResourceType, namespace: str, name: str, obj: Obj, user: UserInfo
    ) -> None:
        if rt.plural in _ROLES:
            if await self._may(user, "escalate", rt.plural, namespace, name):
                return
            if rt.plural == "clusterroles" and isinstance(obj.get("aggregationRule"), dict):
                roles = await self._cluster_roles()
                roles[name] = obj
                wanted = aggregated_rules(name, roles)
            else:
                wanted = _rules(obj.get("rules"))
            await self._require(rt, namespace, name, user, wanted)
            return
        if rt.plural in _BINDINGS:
            ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
            assert isinstance(ref, dict)
            kind, role = str(ref.get("kind", "")), str(ref.get("name", ""))
            plural = "clusterroles" if kind == "ClusterRole" else "roles"
            # ``bind`` is asked in the binding's namespace, so it can be delegated per namespace.
            if await self._may(user, "bind", plural, namespace, role):
                return
            if kind == "ClusterRole":
                wanted = aggregated_rules(role, await self._cluster_roles())
            else:
                stored = await self._store.get(GroupResource(RBAC_GROUP, "roles"), namespace, role)
                wanted = _rules(loads(stored.data).get("rules")) if stored else []
            await self._require(rt, namespace, name, user, wanted)

    async def _may(self, user: UserInfo, verb: str, plural: str, namespace: str, name: str) -> bool:
        attributes = Attributes(
            user,
            verb,
            api_group=RBAC_GROUP,
            api_version="v1",
            resource=plural,
            namespace=namespace,
            name=name,
        )
        return (await self._authorizer.authorize(attributes)).allowed

    async def _cluster_roles(self) -> dict[str, Any]:
        snapshot = await self._store.list(GroupResource(RBAC_GROUP, "clusterroles"), None)
        roles: dict[str, Any] = {}
        for item in snapshot.items:
            obj = loads(item.data)
            roles[obj["metadata"]["name"]] = obj
        return roles

    async def _require(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        user: UserInfo,
        wanted: list[PolicyRule],
    ) -> None:
        held = (await self._authorizer.rules_for(user, namespace)).rules
        missing = uncovered(held, wanted)
        if not missing:
            return
        groups = " ".join(f'"{g}"' for g in user.groups)
        detail = "\n".join(_describe(rule) for rule in missing)
        raise StatusError(
            403,
            "Forbidden",
            f'{rt.plural}.{RBAC_GROUP} "{name}" is forbidden: user "{user.name}" '
            f"(groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n"
            f"{detail}",
            {"name": name, "group": RBAC_GROUP, "kind": rt.plural},
        )


def _rules(value: Any) -> list[PolicyRule]:
    if not isinstance(value, list):
        return []
    return [rule for rule in map(PolicyRule.from_json, value) if rule is not None]
