"""OwnerReferencesPermissionEnforcement: blockOwnerDeletion needs ``update`` on the owner's
``finalizers``, changing references needs ``delete`` on the object; kube-apiserver's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaito.cluster import start_cluster
from kaito.cluster._kubeconfig import write_kubeconfig
from kaito.engine import ApiError, ObjectKey, Resource, load_client

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
RBAC = "rbac.authorization.k8s.io/v1"


def _role(verbs: list[str], resources: list[str]) -> dict[str, Any]:
    return {"apiGroups": [""], "resources": resources, "verbs": verbs}


@pytest.mark.anyio
async def test_block_owner_deletion_needs_finalizers_update_on_the_owner(tmp_path: Path) -> None:
    async with start_cluster(
        tls=True, authorization="RBAC", admission_plugins=["OwnerReferencesPermissionEnforcement"]
    ) as cluster:
        await cluster.create_namespace("team")
        await cluster.client.create(
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "robot", "namespace": "team"}}
        )  # fmt: skip
        owner = await cluster.client.create(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "owner", "namespace": "team"}}
        )  # fmt: skip
        rules = [_role(["get", "create", "update"], ["configmaps"])]
        await cluster.client.create(
            {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "r", "namespace": "team"},
             "rules": rules}
        )  # fmt: skip
        await cluster.client.create(
            {"apiVersion": RBAC, "kind": "RoleBinding",
             "metadata": {"name": "r", "namespace": "team"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
             "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "team"}]}
        )  # fmt: skip
        token = (await cluster.service_account_token("team", "robot")).token
        write_kubeconfig(cluster.kubeconfig_for_token(token), tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
               "uid": owner["metadata"]["uid"]}  # fmt: skip

        def child(name: str, **extra: Any) -> dict[str, Any]:
            return {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "team",
                                 "ownerReferences": [{**ref, **extra}]}}  # fmt: skip

        try:
            await client.create(CONFIG_MAPS, child("plain"))  # a reference alone is fine
            with pytest.raises(ApiError) as denied:
                await client.create(CONFIG_MAPS, child("blocking", blockOwnerDeletion=True))
            assert denied.value.status == 403
            assert denied.value.message == (
                'configmaps "blocking" is forbidden: cannot set blockOwnerDeletion if an '
                "ownerReference refers to a resource you can't set finalizers on: , <nil>"
            )
            stored = await client.get(CONFIG_MAPS, ObjectKey("team", "plain"))
            stored["metadata"]["ownerReferences"] = []
            with pytest.raises(ApiError) as changing:
                await client.replace(CONFIG_MAPS, stored)
            assert changing.value.message == (
                'configmaps "plain" is forbidden: cannot set an ownerRef on a resource you '
                "can't delete: , <nil>"
            )

            rules.append(_role(["update"], ["configmaps/finalizers"]))
            rules.append(_role(["delete"], ["configmaps"]))
            await cluster.client.patch(RBAC, "Role", "r", {"rules": rules}, namespace="team")
            await client.create(CONFIG_MAPS, child("blocking", blockOwnerDeletion=True))
            await client.replace(CONFIG_MAPS, stored)
        finally:
            await client.close()


@pytest.mark.anyio
async def test_an_unknown_admission_plugin_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown plugin"):
        async with start_cluster(admission_plugins=["AlwaysPullImages"]):
            pass
