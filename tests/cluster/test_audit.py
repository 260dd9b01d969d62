"""The audit log: who did what to which object, with the answer's code, while someone records."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from kaito.cluster import start_cluster
from kaito.cluster._kubeconfig import write_kubeconfig
from kaito.engine import ApiError, ObjectKey, Resource, load_client

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")


@pytest.mark.anyio
async def test_requests_are_audited_with_user_verb_object_and_code(tmp_path: Path) -> None:
    async with start_cluster(tls=True, authorization="RBAC") as cluster:
        await cluster.create_namespace("team")
        await cluster.client.create(
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "robot", "namespace": "team"}}
        )  # fmt: skip
        token = (await cluster.service_account_token("team", "robot")).token
        write_kubeconfig(cluster.kubeconfig_for_token(token), tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        with pytest.raises(ApiError):  # not recorded: nobody listens yet
            await client.get(CONFIG_MAPS, ObjectKey("team", "before"))
        with cluster.audit.record() as events:
            with pytest.raises(ApiError) as denied:
                await client.create(
                    CONFIG_MAPS,
                    {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "cm", "namespace": "team"}},
                )  # fmt: skip
            assert denied.value.status == 403
            await cluster.client.create(
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "robot-edit", "namespace": "team"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "edit"},
                 "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "team"}]}
            )  # fmt: skip
            await client.create(
                CONFIG_MAPS,
                {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"generateName": "cm-", "namespace": "team"}},
            )  # fmt: skip
        await client.close()
    robot = "system:serviceaccount:team:robot"
    assert [(e.verb, e.user, e.resource, e.namespace, e.code) for e in events] == [
        ("create", robot, "configmaps", "team", 403),
        ("create", robot, "configmaps", "team", 201),
    ]
    created = events[1]
    assert created.name.startswith("cm-")  # the generated name, as objectRef.name
    assert created.is_write
    assert created.received is not None and events[0].received is not None
    assert events[0].received <= created.received
    record = created.to_dict()
    assert record.pop("requestReceivedTimestamp").endswith("Z")
    assert record["apiVersion"] == "audit.k8s.io/v1"
    assert record["objectRef"] == {
        "resource": "configmaps", "namespace": "team", "name": created.name, "apiVersion": "v1",
    }  # fmt: skip
    assert "system:serviceaccounts:team" in record["user"]["groups"]


@pytest.mark.anyio
async def test_watches_are_audited_when_they_start_and_nothing_is_kept_unrecorded() -> None:
    async with start_cluster() as cluster, aiohttp.ClientSession() as http:
        async with http.get(f"{cluster.url}/api/v1/namespaces/default/configmaps") as r:
            assert r.status == 200
        with cluster.audit.record(lambda e: e.resource == "configmaps") as events:
            async with http.get(f"{cluster.url}/api/v1/namespaces/default/configmaps?watch=1") as r:
                assert r.status == 200
                assert [(e.stage, e.verb) for e in events] == [("ResponseStarted", "watch")]
                r.close()  # the client goes away; the watch ends
            async with http.get(f"{cluster.url}/api/v1/namespaces/default/configmaps/x") as r:
                assert r.status == 404
    assert [(e.stage, e.verb, e.name, e.code, e.user) for e in events] == [
        ("ResponseStarted", "watch", "", 200, "system:admin"),
        ("ResponseComplete", "get", "x", 404, "system:admin"),
    ]
