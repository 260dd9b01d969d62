"""Every ``kubectl create`` generator users type, and ``kubectl run``, against the in-process
server: kubectl sends these as Kubernetes protobuf, and each object must read back through JSON
exactly as the same object sent as JSON (``--dry-run=client -o json | kubectl create -f -``)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    text = json.dumps(obj, sort_keys=True).replace(uid, "<uid>")
    result: dict[str, Any] = json.loads(text)
    return result


GENERATORS = {
    "secret-generic": ("secret", "s1", ["create", "secret", "generic", "s1", "--from-literal=user=admin", "--from-literal=password=p@ss w0rd", "--type=Opaque"]),
    "secret-docker-registry": ("secret", "regcred", ["create", "secret", "docker-registry", "regcred", "--docker-server=myregistry.azurecr.io", "--docker-username=kaito", "--docker-password=s3cr3t", "--docker-email=a@b.c"]),
    "secret-tls": ("secret", "tls1", ["create", "secret", "tls", "tls1", "--cert={cert}", "--key={key}"]),
    "configmap": ("configmap", "cm1", ["create", "configmap", "cm1", "--from-literal=a=b", "--from-file={file}"]),
    "deployment": ("deployment", "web", ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=8080", "--", "nginx", "-g", "daemon off;"]),
    "job": ("job", "pi", ["create", "job", "pi", "--image=perl:5.34", "--", "perl", "-Mbignum=bpi", "-wle", "print bpi(20)"]),
    "cronjob": ("cronjob", "tick", ["create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--restart=OnFailure", "--", "date"]),
    "service-clusterip": ("service", "svc", ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:8443"]),
    "serviceaccount": ("serviceaccount", "robot", ["create", "serviceaccount", "robot"]),
    "role": ("role", "reader", ["create", "role", "reader", "--verb=get,list,watch", "--resource=pods,pods/log,deployments.apps", "--resource-name=a"]),
    "rolebinding": ("rolebinding", "reader-binding", ["create", "rolebinding", "reader-binding", "--role=reader", "--serviceaccount=kube-system:robot", "--user=jane", "--group=devs"]),
    "run": ("pod", "p1", ["run", "p1", "--image=nginx", "--labels=app=p1,tier=web", "--env=A=1", "--port=80", "--restart=Never", "--", "sleep", "3600"]),
}  # fmt: skip


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_generator_reads_back_as_the_same_object_sent_as_json(
    generator: str, pair: tuple[Kubectl, Kubectl], tmp_path: Path
) -> None:
    proto, as_json = pair
    resource, name, template = GENERATORS[generator]
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
    created = proto(*args)
    assert "created" in created.stdout
    dry_run = as_json(*args[: args.index("--") if "--" in args else len(args)],
                      "--dry-run=client", "-o", "json",
                      *(args[args.index("--"):] if "--" in args else []))  # fmt: skip
    as_json("create", "-f", "-", stdin=dry_run.stdout)
    via_proto = json.loads(proto("get", resource, name, "-o", "json").stdout)
    via_json = json.loads(as_json("get", resource, name, "-o", "json").stdout)
    assert _normalised(via_proto) == _normalised(via_json)


def test_create_namespace(api_only: ThreadedCluster, tmp_path: Path) -> None:
    kubectl = Kubectl(api_only.write_kubeconfig(tmp_path / "k"), tmp_path / "cache", "default")
    first, second = f"ns-{secrets.token_hex(3)}", f"ns-{secrets.token_hex(3)}"
    kubectl("create", "namespace", first)
    dry_run = kubectl("create", "namespace", second, "--dry-run=client", "-o", "json").stdout
    kubectl("create", "-f", "-", stdin=dry_run)
    objects = [json.loads(kubectl("get", "namespace", n, "-o", "json").stdout) for n in (first, second)]  # fmt: skip
    for obj, name in zip(objects, (first, second), strict=True):
        assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": name}
        obj["metadata"].pop("name")
        obj["metadata"].pop("labels")
    assert _normalised(objects[0]) == _normalised(objects[1])
