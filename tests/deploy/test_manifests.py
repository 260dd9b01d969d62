"""What deploy/ says, checked against the code it deploys: a hardened two-replica Deployment whose
arguments ``kaito manager`` accepts, probes and ports the manager serves, a PodDisruptionBudget
and a ServiceMonitor that select what they should, the webhook configurations the code renders,
and each overlay's settings as its backend reads them."""

from __future__ import annotations

from typing import Any

import click
import pytest

from kaito.cli._manager import manager as manager_command
from kaito.webhooks import webhook_configurations
from kaito_provisioners.aks._settings import AksSettings
from tests.deploy.conftest import (
    DEPLOY,
    OVERLAYS,
    RELEASE_NAMESPACE,
    container_env,
    documents,
    find,
    manager_args,
    manager_container,
)

pytestmark = pytest.mark.kubectl  # kubectl kustomize renders them


def _parse(overlay: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``kaito manager``'s parameters from the Deployment's arguments and environment."""
    for name, value in container_env(overlay).items():
        monkeypatch.setenv(name, value)
    args = manager_args(overlay)
    assert args[0] == "manager"
    with manager_command.make_context("kaito manager", args[1:]) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_manager_runs_hardened_with_two_replicas_and_leader_election(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = find(overlay, "Deployment", "kaito-workspace")
    pod = deployment["spec"]["template"]["spec"]
    container = manager_container(overlay)
    assert deployment["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == "kaito-workspace"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardened = container["securityContext"]
    assert hardened["readOnlyRootFilesystem"] is True
    assert hardened["allowPrivilegeEscalation"] is False
    assert hardened["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert container["image"] == "kaito-manager:0.1.0"

    params = _parse(overlay, monkeypatch)
    assert params["leader_elect"] is True
    assert params["release_namespace"] == RELEASE_NAMESPACE
    assert params["webhook"] is True
    assert params["webhook_service"] == f"{RELEASE_NAMESPACE}/kaito-workspace-webhook"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert params["health_probe_bind_address"] == f":{ports['probes']}"
    assert params["metrics_bind_address"] == f":{ports['metrics']}"
    assert params["webhook_port"] == ports["webhook"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    expected = {"default": "byo", "base": "byo", "aks": "aks", "karpenter": "karpenter"}
    assert params["node_provisioner"] == expected[overlay]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_services_pdb_and_servicemonitor_select_the_manager(overlay: str) -> None:
    pod_labels = find(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in manager_container(overlay)["ports"]}

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    for service in (d for d in documents(overlay) if d["kind"] == "Service"):
        assert selects(service["spec"]["selector"], pod_labels)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    pdb = find(overlay, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert pdb["spec"]["minAvailable"] < find(overlay, "Deployment")["spec"]["replicas"]
    monitors = [d for d in documents(overlay) if d["kind"] == "ServiceMonitor"]
    if overlay == "base":
        assert monitors == []  # for clusters without the Prometheus Operator
        return
    (monitor,) = monitors
    metrics = find(overlay, "Service", "kaito-workspace-metrics")
    assert selects(monitor["spec"]["selector"]["matchLabels"], metrics["metadata"]["labels"])
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert {p["name"] for p in metrics["spec"]["ports"]} == {"metrics"}


def test_the_webhook_configurations_are_the_ones_the_code_renders() -> None:
    """deploy/ ships them without a caBundle (the manager patches it in); everything else is
    what ``webhook_configurations`` renders for the webhook Service."""
    service = find("default", "Service", "kaito-workspace-webhook")
    (port,) = service["spec"]["ports"]
    rendered = webhook_configurations(
        ca_pem=b"", service=(RELEASE_NAMESPACE, "kaito-workspace-webhook", port["port"])
    )
    for config in rendered:
        for hook in config["webhooks"]:
            del hook["clientConfig"]["caBundle"]
        shipped = find("default", config["kind"], config["metadata"]["name"])
        shipped["metadata"].pop("labels")
        assert shipped == config


def test_aks_overlay_uses_workload_identity_and_gives_the_backend_its_settings() -> None:
    account = find("aks", "ServiceAccount", "kaito-workspace")
    settings = dict(
        line.split("=", 1)
        for line in (DEPLOY / "overlays" / "aks" / "aks.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert account["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": settings["AZURE_CLIENT_ID"]
    }
    assert account["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    pod = find("aks", "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    env = container_env("aks")
    parsed = AksSettings.from_env(env)  # raises, naming what is missing, if anything is
    assert (parsed.subscription_id, parsed.resource_group, parsed.cluster_name) == (
        settings["ARM_SUBSCRIPTION_ID"], settings["ARM_RESOURCE_GROUP"],
        settings["AZURE_CLUSTER_NAME"],
    )  # fmt: skip
    # No credential in the cluster: workload identity projects a token, nothing else is needed.
    assert not any("SECRET" in name or "PASSWORD" in name for name in env)


def test_karpenter_overlay_grants_nodeclaims_and_names_the_node_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role = find("karpenter", "ClusterRole", "kaito-workspace-karpenter")
    assert {"apiGroups": ["karpenter.sh"], "resources": ["nodeclaims"],
            "verbs": ["list", "create", "delete"]} in role["rules"]  # fmt: skip
    binding = find("karpenter", "ClusterRoleBinding", "kaito-workspace-karpenter")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kaito-workspace", "namespace": RELEASE_NAMESPACE}
    ]
    params = _parse("karpenter", monkeypatch)
    assert (params["karpenter_node_class_group"], params["karpenter_node_class_kind"]) == (
        "karpenter.azure.com", "AKSNodeClass",
    )  # fmt: skip
    assert not any(d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("karpenter")
                   for d in documents("default"))  # fmt: skip


def test_an_unknown_flag_in_the_deployment_would_be_refused() -> None:
    """The parse above is a real check: ``kaito manager`` refuses what it does not know."""
    with pytest.raises(click.NoSuchOption):
        manager_command.make_context("kaito manager", ["--leader-elekt"])
