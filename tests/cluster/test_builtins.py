"""Built-in kinds: shared Event storage across API groups, defaults, allocation and kind rules."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from kaito.cluster import Cluster, StatusError
from kaito.cluster._meta import system_clock
from kaito.cluster._sim import node_fits, node_object
from tests.cluster._helpers import http, status_of

pytestmark = pytest.mark.anyio


async def test_core_and_events_k8s_io_events_share_storage(cluster: Cluster) -> None:
    await cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Pulled",
            "message": "pulled the image",
            "type": "Normal",
            "count": 2,
            "source": {"component": "kubelet"},
        }
    )
    modern = await cluster.client.get("events.k8s.io/v1", "Event", "e1", "default")
    assert modern["apiVersion"] == "events.k8s.io/v1"
    assert modern["note"] == "pulled the image"
    assert modern["regarding"]["name"] == "p" and modern["deprecatedCount"] == 2
    await cluster.client.create(
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e2"},
            "regarding": {"kind": "Pod", "name": "q", "namespace": "default"},
            "reason": "Started",
            "note": "started",
            "type": "Normal",
            "reportingController": "kubelet",
            "reportingInstance": "n1",
            "action": "Start",
            "eventTime": "2026-01-01T00:00:00.000000Z",
        }
    )
    core = await cluster.client.list(
        "v1", "Event", "default", field_selector="involvedObject.name=q"
    )
    assert [(e["message"], e["reportingComponent"]) for e in core] == [("started", "kubelet")]


async def test_services_allocate_addresses_and_keep_them(cluster: Cluster) -> None:
    async with http(cluster) as client:
        created = (
            await client.post(
                "/api/v1/namespaces/default/services",
                json={
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "ws"},
                    "spec": {
                        "type": "LoadBalancer",
                        "selector": {"app": "ws"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 5000}],
                    },
                },
            )
        ).json()
        spec = created["spec"]
        assert spec["clusterIP"].startswith("127.96.") and spec["clusterIPs"] == [spec["clusterIP"]]
        assert (
            spec["ports"][0]["protocol"] == "TCP" and 30000 <= spec["ports"][0]["nodePort"] <= 32767
        )
        replacement = {
            **created,
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "ws"},
                "ports": [{"name": "http", "port": 80}],
            },
        }
        kept = (await client.put("/api/v1/namespaces/default/services/ws", json=replacement)).json()
        assert kept["spec"]["clusterIP"] == spec["clusterIP"]
        assert kept["spec"]["ports"][0]["nodePort"] == spec["ports"][0]["nodePort"]
        moved = {
            **kept,
            "spec": {**kept["spec"], "clusterIP": "127.96.9.9", "clusterIPs": ["127.96.9.9"]},
        }
        assert status_of(await client.put("/api/v1/namespaces/default/services/ws", json=moved))[
            :2
        ] == (422, "Invalid")
        headless = (
            await client.post(
                "/api/v1/namespaces/default/services",
                json={
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "ws-headless"},
                    "spec": {"clusterIP": "None"},
                },
            )
        ).json()
        assert headless["spec"]["clusterIP"] == "None"


async def test_secrets_fold_string_data(cluster: Cluster) -> None:
    secret = await cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hf"},
            "stringData": {"HF_TOKEN": "hf_123"},
        }
    )
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"]["HF_TOKEN"]) == b"hf_123"


async def test_pod_specs_are_immutable_except_images(cluster: Cluster) -> None:
    await cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "a:1"}]},
        }
    )
    image = await cluster.client.patch(
        "v1",
        "Pod",
        "p",
        {"spec": {"containers": [{"name": "c", "image": "a:2"}]}},
        namespace="default",
        patch_type="strategic",
    )
    assert image["spec"]["containers"][0]["image"] == "a:2"
    assert image["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert image["status"]["phase"] == "Pending" and image["status"]["qosClass"] == "BestEffort"
    with pytest.raises(StatusError) as caught:
        await cluster.client.patch(
            "v1",
            "Pod",
            "p",
            {"spec": {"restartPolicy": "Never"}},
            namespace="default",
            patch_type="strategic",
        )
    assert caught.value.code == 422
    assert "pod updates may not change fields other than" in caught.value.message


async def test_workload_rules(cluster: Cluster) -> None:
    with pytest.raises(StatusError) as mismatch:
        await cluster.client.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {
                        "metadata": {"labels": {"app": "y"}},
                        "spec": {"containers": [{"name": "c", "image": "i"}]},
                    },
                },
            }
        )
    assert mismatch.value.code == 422
    assert "`selector` does not match template `labels`" in mismatch.value.message
    with pytest.raises(StatusError) as restart:
        await cluster.client.create(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            }
        )
    assert (
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"'
        in restart.value.message
    )
    with pytest.raises(StatusError) as side_effects:
        await cluster.client.create(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "w"},
                "webhooks": [
                    {
                        "name": "w.kaito.sh",
                        "clientConfig": {"url": "https://x"},
                        "admissionReviewVersions": ["v1"],
                    }
                ],
            }
        )
    assert (
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"
        in side_effects.value.message
    )


async def test_leases_support_leader_election_updates(cluster: Cluster) -> None:
    lease = await cluster.client.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "kaito", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": "2026-01-01T00:00:00.000000Z",
            },
        }
    )
    lease["spec"]["holderIdentity"] = "b"
    renewed = await cluster.client.update(lease)
    assert renewed["spec"]["holderIdentity"] == "b"
    with pytest.raises(StatusError) as stale:
        await cluster.client.update(lease)
    assert stale.value.code == 409


def test_required_node_affinity_and_resources() -> None:
    node = node_object(
        "gpu-1",
        gpus=2,
        cpu="8",
        memory="32Gi",
        labels={"zone": "a", "gpus": "2"},
        taints=[],
        ready=True,
        gpu_product=None,
        gpu_memory_mib=None,
        now=system_clock(),
    )

    def pod(affinity_values: list[str], gpus: int = 1, operator: str = "In") -> dict[str, object]:
        return {
            "spec": {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "zone",
                                            "operator": operator,
                                            "values": affinity_values,
                                        }
                                    ]
                                },
                            ]
                        }
                    }
                },
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    }
                ],
            }
        }

    assert node_fits(pod(["a", "b"]), node, {}, 0) is None
    assert node_fits(pod(["b"]), node, {}, 0) == "node(s) didn't match Pod's node affinity/selector"
    assert (
        node_fits(pod(["a"], operator="NotIn"), node, {}, 0)
        == "node(s) didn't match Pod's node affinity/selector"
    )
    assert (
        node_fits(
            pod(["1"], operator="Gt"),
            {**node, "metadata": {**node["metadata"], "labels": {"zone": "3"}}},
            {},
            0,
        )
        is None
    )
    assert node_fits(pod(["a"], gpus=3), node, {}, 0) == "Insufficient nvidia.com/gpu"
    assert (
        node_fits(pod(["a"]), node, {"nvidia.com/gpu": Decimal(2)}, 1)
        == "Insufficient nvidia.com/gpu"
    )
