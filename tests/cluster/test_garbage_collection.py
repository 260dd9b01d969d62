"""Garbage collection by ownerReferences (background, foreground, orphan), namespace deletion and
CRD deletion, driven by the simulated controllers."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.cluster import Cluster, GroupResource, StatusError
from tests.cluster._helpers import eventually, gadget

pytestmark = pytest.mark.anyio


def configmap(
    name: str,
    owner: dict[str, Any] | None = None,
    *,
    block: bool = False,
    finalizers: list[str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "blockOwnerDeletion": block,
            }
        ]
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


async def exists(cluster: Cluster, kind: str, name: str, namespace: str = "default") -> bool:
    try:
        await cluster.client.get("v1", kind, name, namespace)
    except StatusError as error:
        if error.code != 404:
            raise
        return False
    return True


async def test_background_deletion_removes_dependents(cluster: Cluster) -> None:
    owner = await cluster.client.create(configmap("owner"))
    child = await cluster.client.create(configmap("child", owner))
    await cluster.client.create(configmap("grandchild", child))
    await cluster.client.delete("v1", "ConfigMap", "owner", "default")

    async def gone() -> bool:
        return not await exists(cluster, "ConfigMap", "child") and not await exists(
            cluster, "ConfigMap", "grandchild"
        )

    await eventually(cluster, gone)


async def test_foreground_deletion_waits_for_blocking_dependents(cluster: Cluster) -> None:
    owner = await cluster.client.create(configmap("owner"))
    await cluster.client.create(configmap("child", owner, block=True, finalizers=["x.io/hold"]))
    held = await cluster.client.delete(
        "v1", "ConfigMap", "owner", "default", propagation_policy="Foreground"
    )
    assert held is not None and held["metadata"]["finalizers"] == ["foregroundDeletion"]

    async def child_deleting() -> bool:
        child = await cluster.client.get("v1", "ConfigMap", "child", "default")
        return bool(child["metadata"].get("deletionTimestamp"))

    await eventually(cluster, child_deleting)
    assert await exists(cluster, "ConfigMap", "owner"), "the owner waits for its blocking dependent"
    await cluster.client.patch(
        "v1", "ConfigMap", "child", {"metadata": {"finalizers": None}}, namespace="default"
    )

    async def owner_gone() -> bool:
        return not await exists(cluster, "ConfigMap", "owner")

    await eventually(cluster, owner_gone)


async def test_orphan_deletion_keeps_dependents_without_the_reference(cluster: Cluster) -> None:
    owner = await cluster.client.create(configmap("owner"))
    await cluster.client.create(configmap("child", owner))
    await cluster.client.delete("v1", "ConfigMap", "owner", "default", propagation_policy="Orphan")

    async def orphaned() -> bool:
        if await exists(cluster, "ConfigMap", "owner"):
            return False
        child = await cluster.client.get("v1", "ConfigMap", "child", "default")
        return not child["metadata"].get("ownerReferences")

    await eventually(cluster, orphaned)


async def test_dependents_of_missing_owners_are_collected(cluster: Cluster) -> None:
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"},
    }
    await cluster.client.create(configmap("stray", ghost))

    async def gone() -> bool:
        return not await exists(cluster, "ConfigMap", "stray")

    await eventually(cluster, gone)


async def test_namespace_deletion_empties_the_namespace_then_removes_it(cluster: Cluster) -> None:
    await cluster.create_namespace("doomed")
    body = gadget("held", metadata={"name": "held", "finalizers": ["x.io/hold"]})
    await cluster.client.create(body, namespace="doomed")
    await cluster.client.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, namespace="doomed"
    )
    await cluster.client.delete("v1", "Namespace", "doomed")

    async def only_held_left() -> bool:
        namespace = await cluster.client.get("v1", "Namespace", "doomed")
        conditions = {c["type"]: c for c in namespace["status"].get("conditions", [])}
        return (
            not await exists(cluster, "ConfigMap", "c", "doomed")
            and "NamespaceFinalizersRemaining" in conditions
        )

    await eventually(cluster, only_held_left)
    await cluster.client.patch(
        "testing.kaito.sh/v1beta1",
        "Gadget",
        "held",
        {"metadata": {"finalizers": None}},
        namespace="doomed",
    )

    async def namespace_gone() -> bool:
        return not await exists(cluster, "Namespace", "doomed", "")

    await eventually(cluster, namespace_gone)


async def test_crd_deletion_removes_its_objects_then_stops_serving(cluster: Cluster) -> None:
    await cluster.client.create(gadget("a"))
    await cluster.client.delete(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.testing.kaito.sh"
    )

    async def unserved() -> bool:
        try:
            cluster.client.resource("testing.kaito.sh/v1beta1", "Gadget")
        except StatusError:
            return True
        return False

    await eventually(cluster, unserved)
    assert not (await cluster.store.list(GroupResource("testing.kaito.sh", "gadgets"), None)).items
