"""The ClusterRole aggregation controller: a ClusterRole with an ``aggregationRule`` gets the rules
of every ClusterRole its selectors match, rewritten whenever those change (as
kube-controller-manager's ``clusterrole-aggregation`` controller does; ``admin``, ``edit`` and
``view`` are built this way)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from kaito.cluster._auth._rbac import RBAC_GROUP, aggregated_rules
from kaito.cluster._errors import StatusError
from kaito.cluster._json import loads
from kaito.cluster._rest import RequestContext, RestApi, WriteOptions
from kaito.cluster._store import GroupResource, StorageEvent

__all__ = ("ClusterRoleAggregator",)

_CLUSTER_ROLES = GroupResource(RBAC_GROUP, "clusterroles")
_KEY = "clusterroles"


class ClusterRoleAggregator:
    """ControlLoop with a single key: any ClusterRole change re-aggregates every aggregated role."""

    name = "clusterrole-aggregation"

    def __init__(self, rest: RestApi) -> None:
        self._rest = rest
        # In-process controllers act with the loopback administrator's groups.
        self._ctx = RequestContext(
            user="system:serviceaccount:kube-system:clusterrole-aggregation-controller"
        )

    def keys_for(self, gr: GroupResource, event: StorageEvent) -> Iterable[Hashable]:
        del event
        return (_KEY,) if gr == _CLUSTER_ROLES else ()

    async def initial_keys(self) -> Iterable[Hashable]:
        return (_KEY,)

    async def reconcile(self, key: Hashable) -> float | None:
        del key
        snapshot = await self._rest.store.list(_CLUSTER_ROLES, None)
        roles: dict[str, dict[str, Any]] = {}
        for item in snapshot.items:
            obj = loads(item.data)
            roles[obj["metadata"]["name"]] = obj
        rt = self._rest.catalog.lookup(RBAC_GROUP, "v1", "clusterroles")
        if rt is None:
            return None
        for name, role in sorted(roles.items()):
            if not isinstance(role.get("aggregationRule"), dict):
                continue
            wanted = [rule.to_json() for rule in aggregated_rules(name, roles)]
            if (role.get("rules") or []) == wanted:
                continue
            try:
                await self._rest.patch(
                    rt,
                    "",
                    name,
                    "application/merge-patch+json",
                    {"rules": wanted},
                    options=WriteOptions(field_manager="clusterrole-aggregation-controller"),
                    ctx=self._ctx,
                )
            except StatusError as error:
                if error.code != 404:
                    raise
        return None
