"""The real kubectl (v1.32) against the cluster: apply (client-side and server-side), get with
printer columns, -o yaml, describe, patch, edit, scale, delete --wait, explain, get --watch,
wait --for=condition, rollout status, and error reporting."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kaito.cluster import ThreadedCluster, cluster_in_thread
from tests.cluster.conftest import DATA, GADGETS_CRD, NODECLAIMS_CRD, Kubectl

pytestmark = pytest.mark.kubectl

SAMPLE = DATA / "gadget-sample.yaml"


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedCluster]:
    """A cluster whose CRDs are installed by ``kubectl apply``, with two nodes."""
    with cluster_in_thread() as cluster:
        tmp = tmp_path_factory.mktemp("kubectl")
        setup = Kubectl(cluster.write_kubeconfig(tmp / "kubeconfig"), tmp / "cache", "default")
        applied = setup("apply", "-f", str(GADGETS_CRD), "-f", str(NODECLAIMS_CRD))
        assert applied.stdout.splitlines() == [
            "customresourcedefinition.apiextensions.k8s.io/gadgets.testing.kaito.sh created",
            "customresourcedefinition.apiextensions.k8s.io/nodeclaims.karpenter.sh created",
        ]
        cluster.call(cluster.cluster.add_node, "gpu-1")
        yield cluster


def test_apply_client_side_is_idempotent_and_three_way(kubectl: Kubectl, tmp_path: Path) -> None:
    assert (
        kubectl("apply", "-f", str(SAMPLE)).stdout.strip()
        == "gadget.testing.kaito.sh/phi-4 created"
    )
    assert (
        kubectl("apply", "-f", str(SAMPLE)).stdout.strip()
        == "gadget.testing.kaito.sh/phi-4 unchanged"
    )
    changed = (
        SAMPLE.read_text().replace("phi-4-mini-instruct", "phi-4").replace("    app: phi-4\n", "")
    )
    assert (
        kubectl("apply", "-f", "-", stdin=changed).stdout.strip()
        == "gadget.testing.kaito.sh/phi-4 configured"
    )
    live = yaml.safe_load(kubectl("get", "gadget", "phi-4", "-o", "yaml").stdout)
    assert live["inference"]["preset"]["name"] == "phi-4"
    assert "labels" not in live["metadata"], "a label dropped from the manifest is removed"
    assert live["resource"]["count"] == 1, "schema defaults are filled in"


def test_apply_server_side(kubectl: Kubectl) -> None:
    assert (
        kubectl("apply", "--server-side", "-f", str(SAMPLE)).stdout.strip()
        == "gadget.testing.kaito.sh/phi-4 serverside-applied"
    )
    changed = SAMPLE.read_text().replace("Standard_NC24ads_A100_v4", "Standard_NC96ads_A100_v4")
    kubectl("apply", "--server-side", "-f", "-", stdin=changed)
    assert (
        kubectl("get", "gd", "phi-4", "-o", "jsonpath={.resource.instanceType}").stdout
        == "Standard_NC96ads_A100_v4"
    )
    managed = kubectl(
        "get",
        "gd",
        "phi-4",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    )
    assert managed.stdout == "kubectl"
    conflict = kubectl(
        "apply", "--server-side", "--field-manager=other", "-f", str(SAMPLE), check=False
    )
    assert conflict.returncode != 0
    assert 'conflict with "kubectl"' in conflict.stderr
    kubectl("apply", "--server-side", "-f", str(DATA / "nodeclaims.karpenter.sh.yaml"))


def test_get_prints_the_crd_printer_columns(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    kubectl(
        "patch",
        "gadget",
        "phi-4",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"state":"Ready","conditions":[{"type":"ResourceReady","status":"True","reason":"ok",'
        '"message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}',
    )
    lines = kubectl("get", "gadget").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "INSTANCE",
        "RESOURCEREADY",
        "INFERENCEREADY",
        "REPLICAS",
        "AGE",
    ]
    assert lines[1].split()[:5] == [
        "phi-4",
        "Standard_NC24ads_A100_v4",
        "True",
        "1",
        lines[1].split()[4],
    ]
    wide = kubectl("get", "gds", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "INSTANCE",
        "RESOURCEREADY",
        "INFERENCEREADY",
        "REPLICAS",
        "STATE",
        "AGE",
    ]
    assert "Ready" in wide[1].split()
    by_category = kubectl("get", "gadget", "-o", "name").stdout.strip()
    assert by_category == "gadget.testing.kaito.sh/phi-4"


def test_get_yaml_describe_and_explain(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    obj = yaml.safe_load(kubectl("get", "gadget", "phi-4", "-o", "yaml").stdout)
    assert obj["apiVersion"] == "testing.kaito.sh/v1beta1"
    assert obj["metadata"]["namespace"] == kubectl.namespace
    described = kubectl("describe", "gadget", "phi-4").stdout
    assert "Name:         phi-4" in described
    assert "Instance Type:  Standard_NC24ads_A100_v4" in described
    explained = kubectl("explain", "gadget.inference.preset").stdout
    assert "Preset picks a model from the catalog." in explained
    assert "name\t<string>" in explained
    old = kubectl("explain", "gadget", "--api-version=testing.kaito.sh/v1alpha1").stdout
    assert "VERSION:    v1alpha1" in old
    pods = kubectl("explain", "pods.spec.containers.image").stdout
    assert "FIELD: image <string>" in pods


def test_patch_edit_and_scale(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    kubectl("patch", "gadget", "phi-4", "--type=merge", "-p", '{"resource":{"count":2}}')
    kubectl(
        "patch",
        "gadget",
        "phi-4",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/tier","value":"gold"}]',
    )
    edited = kubectl(
        "edit",
        "gadget",
        "phi-4",
        env={"EDITOR": "sed -i s/Standard_NC24ads_A100_v4/Standard_NC48ads_A100_v4/"},
    )
    assert edited.stdout.strip() == "gadget.testing.kaito.sh/phi-4 edited"
    kubectl("scale", "gadget", "phi-4", "--replicas=3")
    obj = yaml.safe_load(kubectl("get", "gadget", "phi-4", "-o", "yaml").stdout)
    assert obj["resource"] == {
        "instanceType": "Standard_NC48ads_A100_v4",
        "count": 3,
        "labelSelector": {"matchLabels": {"apps": "phi-4"}},
    }
    assert obj["metadata"]["labels"]["tier"] == "gold"
    assert obj["metadata"]["generation"] == 4


def test_delete_waits_until_the_object_is_gone(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    kubectl(
        "patch",
        "gadget",
        "phi-4",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":["testing.kaito.sh/hold"]}}',
    )
    held = kubectl("delete", "gadget", "phi-4", "--timeout=1s", check=False)
    assert held.returncode != 0, "a finalizer keeps the object, so --wait times out"
    assert kubectl("get", "gadget", "phi-4", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
    kubectl(
        "patch",
        "gadget",
        "phi-4",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    kubectl("apply", "-f", str(SAMPLE))
    deleted = kubectl("delete", "-f", str(SAMPLE), "--wait")
    assert deleted.stdout.strip() == 'gadget.testing.kaito.sh "phi-4" deleted'
    assert kubectl("get", "gadget", "phi-4", check=False).returncode == 1


def test_get_watch_streams_changes_and_ends_cleanly(
    shared_cluster: ThreadedCluster, kubectl: Kubectl
) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    watcher = subprocess.Popen(
        kubectl.command("get", "gadget", "--watch", "--output-watch-events"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split()[:2] == ["EVENT", "NAME"]
        assert watcher.stdout.readline().split()[:2] == ["ADDED", "phi-4"]
        kubectl("patch", "gadget", "phi-4", "--type=merge", "-p", '{"resource":{"count":5}}')
        modified = watcher.stdout.readline().split()
        assert modified[:2] == ["MODIFIED", "phi-4"] and "5" in modified
        assert shared_cluster.portal.call(shared_cluster.cluster.faults.drop_watches) >= 1
        assert watcher.wait(timeout=30) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def test_wait_for_a_condition(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    waiter = subprocess.Popen(
        kubectl.command("wait", "--for=condition=InferenceReady", "gadget/phi-4", "--timeout=30s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kubectl(
            "patch",
            "gadget",
            "phi-4",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"conditions":[{"type":"InferenceReady","status":"True","reason":"ok","message":"",'
            '"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}',
        )
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert out.strip() == "gadget.testing.kaito.sh/phi-4 condition met"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
"""


def test_builtin_apply_uses_strategic_merge_and_rolls_out(kubectl: Kubectl) -> None:
    assert (
        kubectl("apply", "-f", "-", stdin=DEPLOYMENT).stdout.strip()
        == "deployment.apps/web created"
    )
    changed = DEPLOYMENT.replace("nginx:1.27", "nginx:1.28").replace(', {name: B, value: "2"}', "")
    assert (
        kubectl("apply", "-f", "-", stdin=changed).stdout.strip()
        == "deployment.apps/web configured"
    )
    env = kubectl(
        "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].env[*].name}"
    ).stdout
    assert env == "A"
    rollout = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in rollout.stdout
    pods = kubectl("get", "pods", "-l", "app=web", "-o", "wide").stdout.splitlines()
    assert pods[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert (
        all(line.split()[1:3] == ["1/1", "Running"] and "gpu-1" in line for line in pods[1:])
        and len(pods) == 3
    )
    events = kubectl("get", "events", "--field-selector", "reason=Scheduled").stdout
    assert "Successfully assigned" in events


def test_invalid_objects_are_reported_as_kube_apiserver_does(kubectl: Kubectl) -> None:
    bad = SAMPLE.read_text().replace("Standard_NC24ads_A100_v4", "not a sku")
    failed = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert failed.returncode == 1
    assert (
        'The Gadget "phi-4" is invalid: resource.instanceType: Invalid value: "not a sku"'
        in failed.stderr
    )
    unknown = SAMPLE.read_text().replace("  instanceType:", "  bogus: 1\n  instanceType:")
    strict = kubectl("apply", "-f", "-", stdin=unknown, check=False)
    assert strict.returncode == 1
    assert 'unknown field "resource.bogus"' in strict.stderr


def test_cluster_scoped_custom_resources(kubectl: Kubectl) -> None:
    claim = """
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata:
  name: ws0a1b2c3d4
  labels: {karpenter.sh/nodepool: kaito, node.kubernetes.io/instance-type: Standard_NC24ads_A100_v4}
spec:
  nodeClassRef: {group: kaito.sh, kind: KaitoNodeClass, name: default}
  requirements:
  - {key: node.kubernetes.io/instance-type, operator: In, values: [Standard_NC24ads_A100_v4]}
  resources: {requests: {storage: 1024Gi}}
"""
    kubectl("apply", "-f", "-", stdin=claim)
    lines = kubectl("get", "nodeclaims", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "TYPE",
        "CAPACITY",
        "ZONE",
        "NODE",
        "READY",
        "AGE",
        "ID",
        "NODEPOOL",
    ]
    assert lines[1].split()[:2] == ["ws0a1b2c3d4", "Standard_NC24ads_A100_v4"]
    assert lines[1].split()[-1] == "kaito"
    assert (
        kubectl("get", "nodeclaim", "ws0a1b2c3d4", "-o", "jsonpath={.spec.expireAfter}").stdout
        == "720h"
    )
    kubectl("delete", "nodeclaim", "ws0a1b2c3d4")


def test_kubectl_retries_after_throttling(
    shared_cluster: ThreadedCluster, kubectl: Kubectl
) -> None:
    faults = shared_cluster.cluster.faults
    rule = shared_cluster.portal.call(
        lambda: faults.fail(429, retry_after=1, times=1, verb="list", resource="configmaps")
    )
    listed = kubectl("get", "configmaps", "-o", "name")
    assert rule.hits == 1, "the first list was throttled"
    assert listed.returncode == 0, "client-go waited Retry-After and retried"
    failing = shared_cluster.portal.call(
        lambda: faults.fail(500, times=None, verb="get", resource="gadgets")
    )
    try:
        broken = kubectl("get", "gadget", "missing", check=False)
    finally:
        shared_cluster.portal.call(failing.remove)
    assert broken.returncode == 1
    assert "Internal error occurred: injected fault" in broken.stderr
