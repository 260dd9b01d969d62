"""``--node-provisioner`` and its flags: the backend each name builds, settings from flags or the
environment, errors that name the flag to fix, and every reason documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kaito.cli import main
from kaito.operator import make_provisioner
from kaito.options import PROVISIONERS, ManagerOptions
from kaito_provisioners.aks import AksProvisioner
from kaito_provisioners.fake import FakeProvisioner
from kaito_provisioners.karpenter import NodeClaimProvisioner
from kaito_provisioners.reasons import FIXES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "provisioners.md"
ENV = {
    "ARM_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "ARM_RESOURCE_GROUP": "rg-from-env",
    "AZURE_CLUSTER_NAME": "aks-from-env",
}


def test_every_upstream_name_and_ours_is_accepted() -> None:
    assert set(PROVISIONERS) == {"azure-gpu-provisioner", "karpenter", "byo", "aks", "fake"}


@pytest.mark.anyio
async def test_each_name_builds_its_backend() -> None:
    def made(name: str, **options: object) -> object:
        return make_provisioner(
            ManagerOptions(node_provisioner=name, **options),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            env=ENV,
        )

    assert made("byo") is None
    assert isinstance(made("fake"), FakeProvisioner)
    upstream = made("azure-gpu-provisioner")
    assert isinstance(upstream, NodeClaimProvisioner)
    assert upstream.settings.node_class("", "ubuntu").kind == "KaitoNodeClass"
    assert isinstance(made("karpenter"), NodeClaimProvisioner)
    aks = made("aks", azure_resource_group="rg-from-flag")
    assert isinstance(aks, AksProvisioner)
    try:
        assert aks.settings.subscription_id == ENV["ARM_SUBSCRIPTION_ID"]
        assert aks.settings.resource_group == "rg-from-flag"  # a flag wins over the environment
        assert aks.settings.cluster_name == "aks-from-env"
        assert aks.settings.arm_endpoint is None  # the public cloud's
    finally:
        await aks.aclose()
    assert made("aks", feature_gates={"disableNodeAutoProvisioning": True}) is None


def test_a_missing_cluster_names_each_flag_and_variable() -> None:
    with pytest.raises(ValueError, match="--node-provisioner=aks needs the AKS cluster") as err:
        make_provisioner(ManagerOptions(node_provisioner="aks"), None, env={})  # type: ignore[arg-type]
    for hint in ("--azure-subscription-id (or ARM_SUBSCRIPTION_ID)",
                 "--azure-resource-group (or ARM_RESOURCE_GROUP)",
                 "--azure-cluster-name (or AZURE_CLUSTER_NAME)"):  # fmt: skip
        assert hint in str(err.value)
    with pytest.raises(ValueError, match="only reached over https"):
        make_provisioner(
            ManagerOptions(node_provisioner="aks", azure_resource_manager_endpoint="http://arm"),
            None,  # type: ignore[arg-type]
            env=ENV,
        )


def test_the_manager_refuses_to_start_without_its_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*ENV, "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP"):
        monkeypatch.delenv(name, raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        "'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: "
        "{cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    result = CliRunner().invoke(
        main,
        ["manager", "--kubeconfig", str(kubeconfig), "--node-provisioner", "aks",
         "--no-webhook", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--azure-subscription-id" in result.output


def test_every_reason_is_documented_with_its_fix() -> None:
    text = DOCS.read_text()
    missing = [reason for reason in FIXES if f"`{reason}`" not in text]
    assert missing == [], f"docs/provisioners.md does not explain {missing}"
