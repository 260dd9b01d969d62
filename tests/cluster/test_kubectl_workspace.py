"""kubectl with the project's own Workspace CRD (deploy/crds) and the guide's examples (examples/)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaito.cluster import ThreadedCluster, cluster_in_thread
from tests.cluster.conftest import Kubectl

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "deploy" / "crds" / "kaito.sh_workspaces.yaml"
# The guide's Workspaces (examples/local repeats two of them for kaito up, with loopback URLs).
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if p.parent.name != "local")


def _crd() -> dict[str, Any]:
    return next(
        d
        for d in yaml.safe_load_all(CRD.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    )


def _storage_version() -> dict[str, Any]:
    return next(v for v in _crd()["spec"]["versions"] if v.get("storage"))


def _columns(wide: bool) -> list[str]:
    columns = [
        c
        for c in _storage_version().get("additionalPrinterColumns", [])
        if wide or not c.get("priority")
    ]
    return ["NAME", *(c["name"].upper() for c in columns)]


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedCluster]:
    with cluster_in_thread() as cluster:
        tmp = tmp_path_factory.mktemp("workspace")
        setup = Kubectl(cluster.write_kubeconfig(tmp / "kubeconfig"), tmp / "cache", "default")
        assert setup("apply", "-f", str(CRD)).stdout.strip() == (
            "customresourcedefinition.apiextensions.k8s.io/workspaces.kaito.sh created"
        )
        yield cluster


def _names() -> list[str]:
    return [yaml.safe_load(p.read_text())["metadata"]["name"] for p in EXAMPLES]


def test_the_examples_apply_and_get_shows_the_crd_columns(kubectl: Kubectl) -> None:
    assert EXAMPLES, "examples/ holds the guide's Workspaces"
    applied = kubectl(
        "apply", *(arg for p in EXAMPLES for arg in ("-f", str(p)))
    ).stdout.splitlines()
    assert applied == [f"workspace.kaito.sh/{name} created" for name in _names()]
    again = kubectl("apply", *(arg for p in EXAMPLES for arg in ("-f", str(p)))).stdout.splitlines()
    assert again == [f"workspace.kaito.sh/{name} unchanged" for name in _names()]
    lines = kubectl("get", "workspace").stdout.splitlines()
    assert lines[0].split() == _columns(wide=False)
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(_names())
    wide = kubectl("get", "wk", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == _columns(wide=True)
    by_category = kubectl("get", "workspace", "-o", "name").stdout.split()
    assert sorted(by_category) == sorted(f"workspace.kaito.sh/{n}" for n in _names())


def test_server_side_apply_explain_describe_and_yaml(kubectl: Kubectl) -> None:
    for path in EXAMPLES:
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        assert (
            kubectl("apply", "--server-side", "-f", str(path)).stdout.strip()
            == f"workspace.kaito.sh/{name} serverside-applied"
        )
    explained = kubectl("explain", "workspace.inference.preset").stdout
    assert "KIND:       Workspace" in explained and "FIELD: preset <Object>" in explained
    assert "name\t<string>" in explained
    name = _names()[0]
    stored = yaml.safe_load(kubectl("get", "workspace", name, "-o", "yaml").stdout)
    assert stored["apiVersion"] == f"kaito.sh/{_storage_version()['name']}"
    assert "spec" not in stored, "Workspace fields live at the object root"
    described = kubectl("describe", "workspace", name).stdout
    assert f"Name:         {name}" in described and "Events:" in described


def test_status_wait_and_delete(shared_cluster: ThreadedCluster, kubectl: Kubectl) -> None:
    path = next(p for p in EXAMPLES if "inference" in yaml.safe_load(p.read_text()))
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    kubectl("apply", "-f", str(path))
    waiter = subprocess.Popen(
        kubectl.command(
            "wait", "--for=condition=InferenceReady", f"workspace/{name}", "--timeout=30s"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kubectl(
            "patch",
            "workspace",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"conditions":[{"type":"InferenceReady","status":"True","reason":"WorkspaceInferenceStatusSuccess",'
            '"message":"Inference has been deployed successfully","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}',
        )
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert out.strip() == f"workspace.kaito.sh/{name} condition met"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    row = kubectl("get", "workspace", name).stdout.splitlines()[1].split()
    assert "True" in row
    assert (
        kubectl("delete", "workspace", name, "--wait").stdout.strip()
        == f'workspace.kaito.sh "{name}" deleted'
    )
    assert kubectl("get", "workspace", name, check=False).returncode == 1
