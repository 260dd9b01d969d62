"""Conformance-style checks of write semantics over HTTP: versions, generation, optimistic
concurrency, status subresource, finalizers, preconditions, dry run and multi-version CRDs."""

from __future__ import annotations

import pytest

from kaito.cluster import Cluster
from tests.cluster._helpers import GADGETS, gadget, http, status_of

pytestmark = pytest.mark.anyio
NS = "default"
URL = GADGETS.format(ns=NS)
STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
MERGE = {"Content-Type": "application/merge-patch+json"}


async def test_create_sets_system_metadata_and_duplicates_conflict(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = await client.post(URL, json=gadget("a", status={"state": "Ready"}))
        assert created.status_code == 201
        meta = created.json()["metadata"]
        assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
        assert int(meta["resourceVersion"]) > 0
        assert "status" not in created.json(), (
            "create cannot set status when the status subresource is on"
        )
        assert created.json()["resource"]["count"] == 1, "schema defaults apply"
        again = await client.post(URL, json=gadget("a"))
        assert status_of(again) == (
            409,
            "AlreadyExists",
            'gadgets.testing.kaito.sh "a" already exists',
        )
        assert again.json()["details"] == {
            "name": "a",
            "group": "testing.kaito.sh",
            "kind": "gadgets",
        }


async def test_stale_and_missing_resource_versions_on_update(cluster: Cluster) -> None:
    async with http(cluster) as client:
        first = (await client.post(URL, json=gadget("a"))).json()
        body = {**first, "resource": {"instanceType": "Standard_B"}}
        updated = await client.put(f"{URL}/a", json=body)
        assert updated.status_code == 200
        stale = await client.put(f"{URL}/a", json=body)
        assert status_of(stale) == (
            409,
            "Conflict",
            f'Operation cannot be fulfilled on gadgets.testing.kaito.sh "a": {STALE}',
        )
        missing = {
            **body,
            "metadata": {k: v for k, v in body["metadata"].items() if k != "resourceVersion"},
        }
        unconditional = await client.put(f"{URL}/a", json=missing)
        code, reason, message = status_of(unconditional)
        assert (code, reason) == (422, "Invalid")
        assert message.endswith(
            'metadata.resourceVersion: Invalid value: "0x0": must be specified for an update'
        )
        # Built-in kinds allow unconditional updates.
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"a": "1"},
        }
        assert (
            await client.post(f"/api/v1/namespaces/{NS}/configmaps", json=cm)
        ).status_code == 201
        assert (
            await client.put(
                f"/api/v1/namespaces/{NS}/configmaps/c", json={**cm, "data": {"a": "2"}}
            )
        ).status_code == 200


async def test_generation_moves_with_spec_not_status_or_metadata(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await client.post(URL, json=gadget("a"))
        labels = await client.patch(
            f"{URL}/a", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE
        )
        assert labels.json()["metadata"]["generation"] == 1
        status = await client.patch(
            f"{URL}/a/status", json={"status": {"state": "Ready"}}, headers=MERGE
        )
        assert status.json()["metadata"]["generation"] == 1
        assert status.json()["status"] == {"state": "Ready"}
        spec = await client.patch(f"{URL}/a", json={"resource": {"count": 2}}, headers=MERGE)
        assert spec.json()["metadata"]["generation"] == 2
        # Writes to the main resource keep the stored status; status writes keep everything else.
        main = await client.patch(f"{URL}/a", json={"status": {"state": "Hacked"}}, headers=MERGE)
        assert main.json()["status"] == {"state": "Ready"}
        sneaky = await client.patch(
            f"{URL}/a/status", json={"resource": {"count": 9}}, headers=MERGE
        )
        assert sneaky.json()["resource"]["count"] == 2


async def test_identical_writes_do_not_bump_the_resource_version(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        same = await client.patch(f"{URL}/a", json={"resource": {"count": 1}}, headers=MERGE)
        assert same.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        status = await client.patch(f"{URL}/a/status", json={"status": {}}, headers=MERGE)
        again = await client.patch(f"{URL}/a/status", json={"status": {}}, headers=MERGE)
        assert (
            again.json()["metadata"]["resourceVersion"]
            == status.json()["metadata"]["resourceVersion"]
        )


async def test_patch_precondition_and_formats(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        rv = created["metadata"]["resourceVersion"]
        ok = await client.patch(
            f"{URL}/a",
            json={"metadata": {"resourceVersion": rv}, "resource": {"count": 3}},
            headers=MERGE,
        )
        assert ok.status_code == 200
        stale = await client.patch(
            f"{URL}/a",
            json={"metadata": {"resourceVersion": rv}, "resource": {"count": 4}},
            headers=MERGE,
        )
        assert status_of(stale)[:2] == (409, "Conflict")
        jp = await client.patch(
            f"{URL}/a",
            json=[{"op": "replace", "path": "/resource/count", "value": 5}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert jp.json()["resource"]["count"] == 5
        failed = await client.patch(
            f"{URL}/a",
            json=[{"op": "test", "path": "/resource/count", "value": 6}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert failed.status_code == 422
        smp = await client.patch(
            f"{URL}/a",
            json={"resource": {"count": 1}},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        code, reason, message = status_of(smp)
        assert (code, reason) == (415, "UnsupportedMediaType")
        assert "application/merge-patch+json" in message
        assert (await client.patch(f"{URL}/nope", json={}, headers=MERGE)).status_code == 404


async def test_finalizers_hold_deletion_and_release_it(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await client.post(
            URL, json=gadget("a", metadata={"name": "a", "finalizers": ["testing.kaito.sh/hold"]})
        )
        deleted = await client.delete(f"{URL}/a")
        assert deleted.status_code == 200
        held = deleted.json()
        assert held["metadata"]["deletionTimestamp"]
        assert held["metadata"]["generation"] == 2, "setting deletionTimestamp bumps generation"
        assert (await client.get(f"{URL}/a")).status_code == 200
        more = await client.patch(
            f"{URL}/a",
            json={"metadata": {"finalizers": ["testing.kaito.sh/hold", "x.io/other"]}},
            headers=MERGE,
        )
        code, reason, message = status_of(more)
        assert (code, reason) == (422, "Invalid")
        assert "no new finalizers can be added if the object is being deleted" in message
        released = await client.patch(
            f"{URL}/a", json={"metadata": {"finalizers": None}}, headers=MERGE
        )
        assert released.status_code == 200
        gone = await client.get(f"{URL}/a")
        assert status_of(gone) == (404, "NotFound", 'gadgets.testing.kaito.sh "a" not found')


async def test_delete_preconditions_and_status_response(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (await client.post(URL, json=gadget("a"))).json()
        wrong = await client.request("DELETE", f"{URL}/a", json={"preconditions": {"uid": "nope"}})
        code, reason, message = status_of(wrong)
        assert (code, reason) == (409, "Conflict")
        assert (
            f"Precondition failed: UID in precondition: nope, UID in object meta: {created['metadata']['uid']}"
            in message
        )
        done = await client.request(
            "DELETE", f"{URL}/a", json={"preconditions": {"uid": created["metadata"]["uid"]}}
        )
        assert done.status_code == 200
        assert done.json()["status"] == "Success"
        assert done.json()["details"]["uid"] == created["metadata"]["uid"]


async def test_dry_run_validates_without_storing(cluster: Cluster) -> None:
    async with http(cluster) as client:
        dry = await client.post(URL, params={"dryRun": "All"}, json=gadget("a"))
        assert dry.status_code == 201
        assert (await client.get(f"{URL}/a")).status_code == 404


async def test_versions_share_storage_and_convert_on_read(cluster: Cluster) -> None:
    old_url = "/apis/testing.kaito.sh/v1alpha1/namespaces/default/gadgets"
    async with http(cluster) as client:
        created = await client.post(
            old_url,
            json={
                "apiVersion": "testing.kaito.sh/v1alpha1",
                "kind": "Gadget",
                "metadata": {"name": "old"},
                "resource": {"instanceType": "Standard_X"},
                "inference": {"preset": {"name": "m"}},
            },
        )
        assert created.status_code == 201
        assert created.json()["apiVersion"] == "testing.kaito.sh/v1alpha1"
        new = (await client.get(f"{URL}/old")).json()
        assert new["apiVersion"] == "testing.kaito.sh/v1beta1"
        await client.patch(
            f"{URL}/old", json={"inference": {"adapters": [{"name": "x"}]}}, headers=MERGE
        )
        back = (await client.get(f"{old_url}/old")).json()
        assert "adapters" not in back["inference"], "fields unknown to v1alpha1 are pruned on read"
        listed = (await client.get(old_url)).json()
        assert listed["apiVersion"] == "testing.kaito.sh/v1alpha1"
        assert [i["apiVersion"] for i in listed["items"]] == ["testing.kaito.sh/v1alpha1"]


async def test_scale_subresource_reads_and_writes_replicas(cluster: Cluster) -> None:
    async with http(cluster) as client:
        await client.post(URL, json=gadget("a"))
        scale = (await client.get(f"{URL}/a/scale")).json()
        assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 1}
        scale["spec"]["replicas"] = 3
        assert (await client.put(f"{URL}/a/scale", json=scale)).json()["spec"]["replicas"] == 3
        assert (await client.get(f"{URL}/a")).json()["resource"]["count"] == 3


async def test_server_side_apply_creates_updates_and_reports_conflicts(cluster: Cluster) -> None:
    apply = {"Content-Type": "application/apply-patch+yaml"}
    manifest = (
        "apiVersion: testing.kaito.sh/v1beta1\nkind: Gadget\nmetadata:\n  name: a\n  labels: {team: a}\n"
        "resource:\n  instanceType: Standard_A\n"
    )
    async with http(cluster) as client:
        created = await client.patch(
            f"{URL}/a", params={"fieldManager": "alice"}, content=manifest, headers=apply
        )
        assert created.status_code == 201
        assert created.json()["metadata"]["managedFields"][0]["manager"] == "alice"
        unchanged = await client.patch(
            f"{URL}/a", params={"fieldManager": "alice"}, content=manifest, headers=apply
        )
        assert (
            unchanged.json()["metadata"]["resourceVersion"]
            == created.json()["metadata"]["resourceVersion"]
        )
        other = manifest.replace("Standard_A", "Standard_B")
        clash = await client.patch(
            f"{URL}/a", params={"fieldManager": "bob"}, content=other, headers=apply
        )
        code, reason, message = status_of(clash)
        assert (code, reason) == (409, "Conflict")
        assert (
            message
            == 'Apply failed with 1 conflict: conflict with "alice" using testing.kaito.sh/v1beta1: .resource.instanceType'
        )
        forced = await client.patch(
            f"{URL}/a",
            params={"fieldManager": "bob", "force": "true"},
            content=other,
            headers=apply,
        )
        assert forced.json()["resource"]["instanceType"] == "Standard_B"
        no_manager = await client.patch(f"{URL}/a", content=manifest, headers=apply)
        assert status_of(no_manager)[:2] == (400, "BadRequest")
