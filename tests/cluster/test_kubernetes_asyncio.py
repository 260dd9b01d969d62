"""kubernetes-asyncio, unchanged, against the cluster: list, watch with resume and 410 handling,
patches and status updates, through a kubeconfig the cluster wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kaito.cluster import Cluster
from tests.cluster._helpers import gadget

pytestmark = pytest.mark.anyio
GROUP, VERSION, PLURAL = "testing.kaito.sh", "v1beta1", "gadgets"


@pytest.fixture
async def api(cluster: Cluster, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        str(cluster.write_kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield api_client


async def test_custom_objects_list_patch_and_status(api: client.ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    created = await objects.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, gadget("a")
    )
    listed = await objects.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    patched = await objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "a",
        {"resource": {"count": 2}},
        _content_type="application/merge-patch+json",
    )
    assert patched["metadata"]["generation"] == 2
    status = await objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "a",
        {
            "status": {
                "conditions": [
                    {
                        "type": "InferenceReady",
                        "status": "True",
                        "reason": "ok",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        },
        _content_type="application/merge-patch+json",
    )
    assert status["metadata"]["generation"] == 2
    assert int(status["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    replaced = await objects.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "a", {**status, "status": {"state": "Ready"}}
    )
    assert replaced["status"] == {"state": "Ready"}
    with pytest.raises(ApiException) as stale:
        await objects.replace_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "a", status
        )
    assert stale.value.status == 409


async def test_typed_core_api_round_trips(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg", labels={"app": "x"}), data={"a": "1"}
    )
    await core.create_namespaced_config_map("default", body)
    patched = await core.patch_namespaced_config_map("cfg", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    selected = await core.list_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in selected.items] == ["cfg"]
    namespaces = await core.list_namespace()
    assert {"default", "kube-system"} <= {n.metadata.name for n in namespaces.items}
    with pytest.raises(ApiException) as missing:
        await core.read_namespaced_config_map("nope", "default")
    assert missing.value.status == 404


async def test_watch_resumes_from_the_last_seen_version(
    cluster: Cluster, api: client.ApiClient
) -> None:
    objects = client.CustomObjectsApi(api)
    first = await objects.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, gadget("a")
    )
    await objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, gadget("b"))
    seen: list[tuple[str, str]] = []
    last_rv = first["metadata"]["resourceVersion"]
    stream = watch.Watch()
    async with stream.stream(
        objects.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=last_rv,
        allow_watch_bookmarks=True,
    ) as events:
        async for event in events:
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            last_rv = event["object"]["metadata"]["resourceVersion"]
            break
    assert seen == [("ADDED", "b")]
    await objects.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a")
    resumed = watch.Watch()
    async with resumed.stream(
        objects.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=last_rv,
    ) as events:
        async for event in events:
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            break
    assert seen == [("ADDED", "b"), ("DELETED", "a")]


async def test_watch_from_a_compacted_version_raises_410(
    cluster: Cluster, api: client.ApiClient
) -> None:
    objects = client.CustomObjectsApi(api)
    first = await objects.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, gadget("a")
    )
    await objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, gadget("b"))
    await cluster.faults.compact()
    stream = watch.Watch()

    async def consume() -> None:
        async with stream.stream(
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=first["metadata"]["resourceVersion"],
        ) as events:
            async for _ in events:
                pass

    with pytest.raises(ApiException) as gone:
        await consume()
    assert gone.value.status == 410
    relisted = await objects.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert len(relisted["items"]) == 2


async def test_dropped_watch_is_resumed_by_the_client_without_gaps(
    cluster: Cluster, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    start = (await core.list_namespaced_config_map("default")).metadata.resource_version
    watches = cluster.faults.delay(0, verb="watch")
    names: list[str] = []
    stream = watch.Watch()
    async with stream.stream(
        core.list_namespaced_config_map, "default", resource_version=start
    ) as events:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
        async for event in events:
            names.append(event["object"].metadata.name)
            if len(names) == 2:
                break
            assert cluster.faults.drop_watches() == 1
            await core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    assert names == ["one", "two"]
    assert watches.hits == 2, "the client reconnected from its last resourceVersion"


async def test_informer_style_list_then_watch(cluster: Cluster, api: client.ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    for name in ("a", "b", "c"):
        await objects.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, gadget(name)
        )
    page: dict[str, Any] = await objects.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, limit=2
    )
    items = list(page["items"])
    while page["metadata"].get("continue"):
        page = await objects.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, limit=2, _continue=page["metadata"]["continue"]
        )
        items += page["items"]
    assert [i["metadata"]["name"] for i in items] == ["a", "b", "c"]
    await objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "b",
        {"status": {"state": "Ready"}},
        _content_type="application/merge-patch+json",
    )
    stream = watch.Watch()
    async with stream.stream(
        objects.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=page["metadata"]["resourceVersion"],
    ) as events:
        async for event in events:
            assert (event["type"], event["object"]["status"]) == ("MODIFIED", {"state": "Ready"})
            break
