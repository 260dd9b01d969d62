"""Every ``kubectl create`` generator users type, and ``kubectl run``, against the in-process
server: kubectl sends these as Kubernetes protobuf, and each object must read back through JSON
exactly as the same object sent as JSON (``--dry-run=client -o json | kubectl create -f -``)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kaito.cluster import Controllers, ThreadedCluster, cluster_in_thread
from kaito.tls import generate_serving_certificate
from tests.cluster.conftest import Kubectl

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def api_only() -> Iterator[ThreadedCluster]:
    """A cluster without the workload controllers, so objects stay exactly as created."""
    with cluster_in_thread(controllers=Controllers.api_only()) as cluster:
        yield cluster


@pytest.fixture
def pair(api_only: ThreadedCluster, tmp_path: Path) -> tuple[Kubectl, Kubectl]:
    """kubectl in two fresh namespaces: one for the protobuf path, one for the JSON path."""
    clients = []
    for side in ("proto", "json"):
        name = f"{side}-{secrets.token_hex(3)}"
        api_only.call(api_only.cluster.create_namespace, name)
        kubeconfig = api_only.write_kubeconfig(tmp_path / f"{side}.kubeconfig")
        clients.append(Kubectl(kubeconfig, tmp_path / "cache", name))
    return clients[0], clients[1]


def _normalised(obj: dict[str, Any]) -> dict[str, Any]:
    uid = obj["metadata"]["uid"]
    meta = obj["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "namespace", "managedFields"):
        meta.pop(key, None)
    spec = obj.get("spec") or {}
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.pop("nodePort", None)  # allocated
    text = json.dumps(obj, sort_keys=True).replace(uid, "<uid>")
    result: dict[str, Any] = json.loads(text)
    return result


GENERATORS = {
    "secret-generic": ("/api/v1/namespaces/{ns}/secrets", "s1", ["create", "secret", "generic", "s1", "--from-literal=user=admin", "--from-literal=password=p@ss w0rd", "--type=Opaque"]),
    "secret-docker-registry": ("/api/v1/namespaces/{ns}/secrets", "regcred", ["create", "secret", "docker-registry", "regcred", "--docker-server=myregistry.azurecr.io", "--docker-username=kaito", "--docker-password=s3cr3t", "--docker-email=a@b.c"]),
    "secret-tls": ("/api/v1/namespaces/{ns}/secrets", "tls1", ["create", "secret", "tls", "tls1", "--cert={cert}", "--key={key}"]),
    "configmap": ("/api/v1/namespaces/{ns}/configmaps", "cm1", ["create", "configmap", "cm1", "--from-literal=a=b", "--from-file={file}"]),
    "deployment": ("/apis/apps/v1/namespaces/{ns}/deployments", "web", ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=8080", "--", "nginx", "-g", "daemon off;"]),
    "job": ("/apis/batch/v1/namespaces/{ns}/jobs", "pi", ["create", "job", "pi", "--image=perl:5.34", "--", "perl", "-Mbignum=bpi", "-wle", "print bpi(20)"]),
    "cronjob": ("/apis/batch/v1/namespaces/{ns}/cronjobs", "tick", ["create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--restart=OnFailure", "--", "date"]),
    "service-clusterip": ("/api/v1/namespaces/{ns}/services", "svc", ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:8443"]),
    "serviceaccount": ("/api/v1/namespaces/{ns}/serviceaccounts", "robot", ["create", "serviceaccount", "robot"]),
    "role": ("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", "reader", ["create", "role", "reader", "--verb=get,list,watch", "--resource=pods,pods/log,deployments.apps", "--resource-name=a"]),
    "rolebinding": ("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", "reader-binding", ["create", "rolebinding", "reader-binding", "--role=reader", "--serviceaccount=kube-system:robot", "--user=jane", "--group=devs"]),
    "poddisruptionbudget": ("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", "pdb", ["create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"]),
    "service-nodeport": ("/api/v1/namespaces/{ns}/services", "np", ["create", "service", "nodeport", "np", "--tcp=80:8080"]),
    "run": ("/api/v1/namespaces/{ns}/pods", "p1", ["run", "p1", "--image=nginx", "--labels=app=p1,tier=web", "--env=A=1", "--port=80", "--restart=Never", "--", "sleep", "3600"]),
}  # fmt: skip


def _dry_run(kubectl: Kubectl, args: list[str]) -> dict[str, Any]:
    """The generator's object as kubectl would send it, as JSON."""
    split = args.index("--") if "--" in args else len(args)
    out = kubectl(*args[:split], "--dry-run=client", "-o", "json", *args[split:]).stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def _via_json(cluster: ThreadedCluster, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Create ``obj`` with a JSON body, then read it back."""
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        created = client.post(collection, json=obj)
        assert created.status_code == 201, created.text
        return _read(cluster, collection, obj["metadata"]["name"])


def _read(cluster: ThreadedCluster, collection: str, name: str) -> dict[str, Any]:
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        response = client.get(f"{collection}/{name}", headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text
        obj: dict[str, Any] = response.json()
        return obj


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_generator_reads_back_as_the_same_object_sent_as_json(
    generator: str, pair: tuple[Kubectl, Kubectl], api_only: ThreadedCluster, tmp_path: Path
) -> None:
    proto, as_json = pair
    collection, name, template = GENERATORS[generator]
    certificate = generate_serving_certificate(["example.com"])
    (tmp_path / "tls.crt").write_bytes(certificate.cert_pem)
    (tmp_path / "tls.key").write_bytes(certificate.key_pem)
    (tmp_path / "app.properties").write_text("color=blue\nsize=large\n")
    args = [
        part.format(
            cert=tmp_path / "tls.crt", key=tmp_path / "tls.key", file=tmp_path / "app.properties"
        )
        for part in template
    ]
    assert "created" in proto(*args).stdout  # kubectl sends Kubernetes protobuf
    via_proto = _read(api_only, collection.format(ns=proto.namespace), name)
    via_json = _via_json(api_only, collection.format(ns=as_json.namespace), _dry_run(as_json, args))
    assert _normalised(via_proto) == _normalised(via_json)


CLUSTER_GENERATORS = {
    "namespace": ("/api/v1/namespaces", ["create", "namespace", "{name}"]),
    "clusterrole": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", ["create", "clusterrole", "{name}", "--verb=get", "--resource=nodes,nodes/status", "--non-resource-url=/metrics"]),
    "clusterrole-aggregated": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", ["create", "clusterrole", "{name}", "--aggregation-rule=kaito.sh/aggregate=true"]),
    "clusterrolebinding": ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", ["create", "clusterrolebinding", "{name}", "--clusterrole=view", "--user=jane", "--serviceaccount=default:robot"]),
    "priorityclass": ("/apis/scheduling.k8s.io/v1/priorityclasses", ["create", "priorityclass", "{name}", "--value=1000", "--description=GPU work", "--preemption-policy=Never"]),
}  # fmt: skip


@pytest.mark.parametrize("generator", sorted(CLUSTER_GENERATORS))
def test_cluster_scoped_generators(
    generator: str, api_only: ThreadedCluster, tmp_path: Path
) -> None:
    kubectl = Kubectl(api_only.write_kubeconfig(tmp_path / "k"), tmp_path / "cache", "default")
    collection, template = CLUSTER_GENERATORS[generator]
    first, second = f"g-{secrets.token_hex(3)}", f"g-{secrets.token_hex(3)}"
    kubectl(*(part.format(name=first) for part in template))
    objects = [
        _read(api_only, collection, first),
        _via_json(
            api_only, collection, _dry_run(kubectl, [p.format(name=second) for p in template])
        ),
    ]
    for obj, name in zip(objects, (first, second), strict=True):
        assert obj["metadata"].pop("name") == name
        labels = obj["metadata"].get("labels") or {}
        if labels.get("kubernetes.io/metadata.name") == name:
            del labels["kubernetes.io/metadata.name"]
    assert _normalised(objects[0]) == _normalised(objects[1])
