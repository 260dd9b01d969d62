"""Authorisation: the request attributes, kube-apiserver's RBAC authoriser over Roles, ClusterRoles
and their bindings (aggregated ClusterRoles included), the ``system:masters`` bypass, and the
rules review behind ``kubectl auth can-i --list``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import attrs

from kaito.cluster._auth._user import MASTERS, UserInfo, split_service_account
from kaito.cluster._json import loads
from kaito.cluster._selectors import label_selector_from_object
from kaito.cluster._store import GroupResource, Storage, StorageEvent

__all__ = (
    "RBAC_GROUP",
    "AlwaysAllow",
    "Attributes",
    "Authorizer",
    "Decision",
    "PolicyRule",
    "RbacAuthorizer",
    "RulesReview",
    "aggregated_rules",
    "forbidden_message",
    "rule_allows",
)

RBAC_GROUP = "rbac.authorization.k8s.io"
_BUCKETS = {
    "clusterroles": GroupResource(RBAC_GROUP, "clusterroles"),
    "clusterrolebindings": GroupResource(RBAC_GROUP, "clusterrolebindings"),
    "roles": GroupResource(RBAC_GROUP, "roles"),
    "rolebindings": GroupResource(RBAC_GROUP, "rolebindings"),
}


@attrs.frozen
class Attributes:
    """What a request asks to do (kube-apiserver's ``authorizer.Attributes``)."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@attrs.frozen
class Decision:
    """An authoriser's answer; ``reason`` is shown in 403s and access reviews."""

    allowed: bool
    reason: str = ""
    evaluation_error: str = ""


@attrs.frozen
class PolicyRule:
    """One ``rbac.authorization.k8s.io/v1`` ``PolicyRule``."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, rule: Any) -> PolicyRule | None:
        """Parse a rule dict; ``None`` for something that is not one."""
        if not isinstance(rule, dict):
            return None

        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or ()
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        return cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as JSON (fields omitted when empty, as Go writes them)."""
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        for key, value in (
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        ):
            if value:
                out[key] = list(value)
        return out


def _verb_matches(rule: PolicyRule, verb: str) -> bool:
    return "*" in rule.verbs or verb in rule.verbs


def _resource_matches(rule: PolicyRule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in rule.resources:
        if candidate in ("*", combined):
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def _url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url in ("*", path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attributes: Attributes, rule: PolicyRule) -> bool:
    """Whether ``rule`` allows the request (kube-apiserver's ``RuleAllows``)."""
    if not _verb_matches(rule, attributes.verb):
        return False
    if not attributes.resource_request:
        return _url_matches(rule, attributes.path)
    if not ("*" in rule.api_groups or attributes.api_group in rule.api_groups):
        return False
    if not _resource_matches(rule, attributes.resource, attributes.subresource):
        return False
    return not rule.resource_names or attributes.name in rule.resource_names


def forbidden_message(attributes: Attributes) -> str:
    """kube-apiserver's ``User "..." cannot VERB resource "..." in API group "..." ...``."""
    user = attributes.user.name
    if not attributes.resource_request:
        return f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource
    if attributes.subresource:
        resource += "/" + attributes.subresource
    where = (
        f'in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else "at the cluster scope"
    )
    return (
        f'User "{user}" cannot {attributes.verb} resource "{resource}" in API group '
        f'"{attributes.api_group}" {where}'
    )


@attrs.frozen
class RulesReview:
    """The rules a user has in a namespace (``SelfSubjectRulesReview``)."""

    rules: tuple[PolicyRule, ...]
    incomplete: bool = False
    evaluation_error: str = ""

    def status(self) -> dict[str, Any]:
        """The ``SubjectRulesReviewStatus`` JSON."""
        resource = [
            {
                "verbs": list(r.verbs),
                **({"apiGroups": list(r.api_groups)} if r.api_groups else {}),
                **({"resources": list(r.resources)} if r.resources else {}),
                **({"resourceNames": list(r.resource_names)} if r.resource_names else {}),
            }
            for r in self.rules
            if not r.non_resource_urls
        ]
        non_resource = [
            {"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)}
            for r in self.rules
            if r.non_resource_urls
        ]
        status: dict[str, Any] = {
            "resourceRules": resource,
            "nonResourceRules": non_resource,
            "incomplete": self.incomplete,
        }
        if self.evaluation_error:
            status["evaluationError"] = self.evaluation_error
        return status


class Authorizer(Protocol):
    """Protocol: decides whether a request may proceed."""

    mode: str

    async def authorize(self, attributes: Attributes) -> Decision:
        """Allow or deny one request."""
        ...

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesReview:
        """Every rule ``user`` holds in ``namespace`` (cluster-wide rules included)."""
        ...


class AlwaysAllow:
    """Any authenticated request may do anything (kube-apiserver's ``AlwaysAllow`` mode)."""

    mode = "AlwaysAllow"

    async def authorize(self, attributes: Attributes) -> Decision:
        """Allow."""
        del attributes
        return Decision(True)

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesReview:
        """Everything, everywhere."""
        del user, namespace
        return RulesReview(
            (
                PolicyRule(("*",), ("*",), ("*",)),
                PolicyRule(("*",), non_resource_urls=("*",)),
            )
        )


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def aggregated_rules(
    name: str, cluster_roles: Mapping[str, Mapping[str, Any]], _seen: frozenset[str] = frozenset()
) -> list[PolicyRule]:
    """The rules of ClusterRole ``name``: its own, or for an aggregated role the rules of every
    ClusterRole its ``aggregationRule`` selects (transitively; each rule once)."""
    role = cluster_roles.get(name)
    if role is None:
        return []
    aggregation = role.get("aggregationRule")
    if not isinstance(aggregation, dict):
        return [r for r in map(PolicyRule.from_json, role.get("rules") or []) if r is not None]
    selectors = [
        label_selector_from_object(s)
        for s in aggregation.get("clusterRoleSelectors") or []
        if isinstance(s, dict)
    ]
    rules: list[PolicyRule] = []
    for other, candidate in sorted(cluster_roles.items()):
        if other == name or other in _seen:
            continue
        if any(selector.matches(_labels(candidate)) for selector in selectors):
            for rule in aggregated_rules(other, cluster_roles, _seen | {name}):
                if rule not in rules:
                    rules.append(rule)
    return rules


@attrs.frozen
class _Binding:
    kind: str
    name: str
    namespace: str
    role_kind: str
    role_name: str
    subjects: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> _Binding:
        meta = obj.get("metadata") or {}
        ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
        assert isinstance(ref, dict)
        subjects = obj.get("subjects") if isinstance(obj.get("subjects"), list) else []
        assert isinstance(subjects, list)
        return cls(
            obj.get("kind", ""),
            meta.get("name", ""),
            meta.get("namespace", ""),
            str(ref.get("kind", "")),
            str(ref.get("name", "")),
            tuple(s for s in subjects if isinstance(s, dict)),
        )

    def describe(self, subject: Mapping[str, Any]) -> str:
        name = f"{self.name}/{self.namespace}" if self.namespace else self.name
        kind = subject.get("kind", "")
        who = subject.get("name", "")
        if kind == "ServiceAccount":
            who = f"{who}/{subject.get('namespace') or self.namespace}"
        return f'{self.kind} "{name}" of {self.role_kind} "{self.role_name}" to {kind} "{who}"'


def _subject_matches(subject: Mapping[str, Any], user: UserInfo, namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        account = split_service_account(user.name)
        sa_namespace = subject.get("namespace") or namespace
        return account == (sa_namespace, name)
    return False


@attrs.frozen
class _Policy:
    cluster_roles: Mapping[str, Mapping[str, Any]]
    roles: Mapping[tuple[str, str], Mapping[str, Any]]
    cluster_bindings: tuple[_Binding, ...]
    bindings: Mapping[str, tuple[_Binding, ...]]


class RbacAuthorizer:
    """kube-apiserver's RBAC authoriser, plus its ``system:masters`` bypass.

    Reads Roles, ClusterRoles and bindings from storage, re-reading them after any RBAC write.
    """

    mode = "RBAC"

    def __init__(self, store: Storage) -> None:
        self._store = store
        self._policy: _Policy | None = None
        self._remove = store.add_listener(self._on_commit)

    def close(self) -> None:
        """Stop following storage."""
        self._remove()

    def _on_commit(self, gr: GroupResource, event: StorageEvent) -> None:
        del event
        if gr.group == RBAC_GROUP:
            self._policy = None

    async def _load(self) -> _Policy:
        if self._policy is not None:
            return self._policy
        objects: dict[str, list[dict[str, Any]]] = {}
        for key, gr in _BUCKETS.items():
            snapshot = await self._store.list(gr, None)
            objects[key] = [loads(item.data) for item in snapshot.items]
        bindings: dict[str, list[_Binding]] = {}
        for obj in objects["rolebindings"]:
            binding = _Binding.from_json(obj)
            bindings.setdefault(binding.namespace, []).append(binding)
        policy = _Policy(
            {o["metadata"]["name"]: o for o in objects["clusterroles"]},
            {
                (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                for o in objects["roles"]
            },
            tuple(_Binding.from_json(o) for o in objects["clusterrolebindings"]),
            {ns: tuple(items) for ns, items in bindings.items()},
        )
        self._policy = policy
        return policy

    def _rules(
        self, policy: _Policy, binding: _Binding, errors: list[str]
    ) -> list[PolicyRule] | None:
        if binding.role_kind == "ClusterRole":
            if binding.role_name not in policy.cluster_roles:
                errors.append(f'clusterrole.{RBAC_GROUP} "{binding.role_name}" not found')
                return None
            return aggregated_rules(binding.role_name, policy.cluster_roles)
        if binding.role_kind == "Role" and binding.namespace:
            role = policy.roles.get((binding.namespace, binding.role_name))
            if role is None:
                errors.append(f'role.{RBAC_GROUP} "{binding.role_name}" not found')
                return None
            return [r for r in map(PolicyRule.from_json, role.get("rules") or []) if r is not None]
        errors.append(f"unsupported roleRef kind {binding.role_kind!r}")
        return None

    def _visit(
        self,
        policy: _Policy,
        user: UserInfo,
        namespace: str,
        visitor: Callable[[_Binding, Mapping[str, Any], PolicyRule], bool],
        errors: list[str],
    ) -> None:
        """Call ``visitor`` with every rule ``user`` holds, cluster-wide then in ``namespace``,
        until it returns False."""
        for binding, scope in self._bindings(policy, namespace):
            subject = next((s for s in binding.subjects if _subject_matches(s, user, scope)), None)
            if subject is None:
                continue
            rules = self._rules(policy, binding, errors)
            for rule in rules or ():
                if not visitor(binding, subject, rule):
                    return

    @staticmethod
    def _bindings(policy: _Policy, namespace: str) -> Iterator[tuple[_Binding, str]]:
        for binding in policy.cluster_bindings:
            yield binding, ""
        if namespace:
            for binding in policy.bindings.get(namespace, ()):
                yield binding, namespace

    async def authorize(self, attributes: Attributes) -> Decision:
        """Allow when ``system:masters`` or any bound rule allows; never deny explicitly."""
        if MASTERS in attributes.user.groups:
            return Decision(True)
        policy = await self._load()
        errors: list[str] = []
        found: list[str] = []

        def visit(binding: _Binding, subject: Mapping[str, Any], rule: PolicyRule) -> bool:
            if rule_allows(attributes, rule):
                found.append(f"RBAC: allowed by {binding.describe(subject)}")
                return False
            return True

        self._visit(policy, attributes.user, attributes.namespace, visit, errors)
        if found:
            return Decision(True, found[0])
        reason = ""
        if errors:
            reason = "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
        return Decision(False, reason)

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesReview:
        """Every rule bound to ``user`` cluster-wide and in ``namespace``."""
        policy = await self._load()
        errors: list[str] = []
        rules: list[PolicyRule] = []

        def visit(binding: _Binding, subject: Mapping[str, Any], rule: PolicyRule) -> bool:
            del binding, subject
            rules.append(rule)
            return True

        self._visit(policy, user, namespace, visit, errors)
        return RulesReview(tuple(rules), bool(errors), "; ".join(errors))
