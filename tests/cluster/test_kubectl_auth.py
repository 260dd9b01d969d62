"""kubectl against a TLS cluster with RBAC enforced: ``auth can-i`` (and ``--list``) answer
truthfully, ``create token`` gives a token that kubectl authenticates with, ``auth whoami``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaito.cluster import ThreadedCluster, cluster_in_thread
from kaito.cluster._kubeconfig import write_kubeconfig
from tests.cluster.conftest import Kubectl

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def rbac_cluster() -> Iterator[ThreadedCluster]:
    with cluster_in_thread(tls=True, authorization="RBAC") as cluster:
        yield cluster


@pytest.fixture
def admin(rbac_cluster: ThreadedCluster, tmp_path: Path) -> Kubectl:
    namespace = f"t-{secrets.token_hex(3)}"
    rbac_cluster.call(rbac_cluster.cluster.create_namespace, namespace)
    kubeconfig = rbac_cluster.write_kubeconfig(tmp_path / "admin.kubeconfig")
    return Kubectl(kubeconfig, tmp_path / "cache", namespace)


def _can_i(kubectl: Kubectl, *args: str) -> bool:
    result = kubectl("auth", "can-i", *args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.returncode == 0 and result.stdout.strip() == "yes"


def test_can_i_answers_truthfully(admin: Kubectl) -> None:
    robot = f"--as=system:serviceaccount:{admin.namespace}:robot"
    admin("create", "serviceaccount", "robot")
    assert _can_i(admin, "delete", "nodes")
    assert not _can_i(admin, "list", "pods", robot)
    admin("create", "role", "reader", "--verb=get,list,watch", "--resource=pods,configmaps")
    admin("create", "rolebinding", "robot-reads", "--role=reader",
          f"--serviceaccount={admin.namespace}:robot")  # fmt: skip
    assert _can_i(admin, "list", "pods", robot)
    assert _can_i(admin, "watch", "configmaps", robot)
    assert not _can_i(admin, "delete", "pods", robot)
    assert not _can_i(admin, "list", "secrets", robot)
    assert not _can_i(admin, "list", "pods", robot, "--namespace", "default")
    assert not _can_i(admin, "list", "pods", robot, "--all-namespaces")
    denied = admin("get", "secrets", robot, check=False)
    assert denied.returncode == 1
    assert (
        f'Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:'
        f'{admin.namespace}:robot" cannot list resource "secrets" in API group "" in the '
        f'namespace "{admin.namespace}"'
    ) in denied.stderr


def test_can_i_list_shows_exactly_the_bound_rules(admin: Kubectl) -> None:
    admin("create", "serviceaccount", "lister")
    admin("create", "role", "leases", "--verb=get,update", "--resource=leases.coordination.k8s.io",
          "--resource-name=kaito-manager")  # fmt: skip
    admin("create", "rolebinding", "lister-leases", "--role=leases",
          f"--serviceaccount={admin.namespace}:lister")  # fmt: skip
    listing = admin("auth", "can-i", "--list",
                    f"--as=system:serviceaccount:{admin.namespace}:lister").stdout  # fmt: skip
    rows = [line.split() for line in listing.splitlines()[1:] if line.strip()]
    resources = {row[0]: row[1:] for row in rows if not row[0].startswith("[")}
    assert resources == {
        "leases.coordination.k8s.io": ["[]", "[kaito-manager]", "[get", "update]"],
        "selfsubjectreviews.authentication.k8s.io": ["[]", "[]", "[create]"],
        "selfsubjectaccessreviews.authorization.k8s.io": ["[]", "[]", "[create]"],
        "selfsubjectrulesreviews.authorization.k8s.io": ["[]", "[]", "[create]"],
    }
    urls = {row[0] for row in rows if row[0].startswith("[")}
    assert "[/version]" in urls
    assert "[/api/*]" in urls


def test_create_token_and_use_it(admin: Kubectl, rbac_cluster: ThreadedCluster,
                                 tmp_path: Path) -> None:  # fmt: skip
    admin("create", "serviceaccount", "bot")
    token = admin("create", "token", "bot", "--duration=20m").stdout.strip()
    assert token.count(".") == 2
    config = rbac_cluster.cluster.kubeconfig_for_token(token, namespace=admin.namespace)
    bot = Kubectl(write_kubeconfig(config, tmp_path / "bot.kubeconfig"), tmp_path / "cache",
                  admin.namespace)  # fmt: skip
    whoami = bot("auth", "whoami").stdout
    assert f"system:serviceaccount:{admin.namespace}:bot" in whoami
    assert "system:serviceaccounts" in whoami
    denied = bot("get", "pods", check=False)
    assert 'cannot list resource "pods"' in denied.stderr
    admin("create", "rolebinding", "bot-views", "--clusterrole=view",
          f"--serviceaccount={admin.namespace}:bot")  # fmt: skip
    assert "No resources found" in bot("get", "pods").stderr
    assert bot("create", "configmap", "x", check=False).returncode == 1  # view is read-only
    wrong_audience = admin("create", "token", "bot", "--audience=vault").stdout.strip()
    other = rbac_cluster.cluster.kubeconfig_for_token(wrong_audience)
    outsider = Kubectl(write_kubeconfig(other, tmp_path / "v.kubeconfig"), tmp_path / "cache",
                       admin.namespace)  # fmt: skip
    refused = outsider("get", "pods", check=False)
    assert refused.returncode == 1
    assert "Unauthorized" in refused.stderr or "provide credentials" in refused.stderr


def test_client_certificate_users_and_group_bindings(
    admin: Kubectl, rbac_cluster: ThreadedCluster, tmp_path: Path
) -> None:
    config = rbac_cluster.cluster.kubeconfig_for_user("jane", ["devs"], namespace=admin.namespace)
    jane = Kubectl(write_kubeconfig(config, tmp_path / "jane.kubeconfig"), tmp_path / "cache",
                   admin.namespace)  # fmt: skip
    denied = jane("create", "configmap", "by-jane", check=False)
    assert 'User "jane" cannot create resource "configmaps"' in denied.stderr
    admin("create", "rolebinding", "devs-edit", "--clusterrole=edit", "--group=devs")
    jane("create", "configmap", "by-jane")
    assert _can_i(jane, "create", "deployments.apps")
    assert not _can_i(jane, "create", "rolebindings.rbac.authorization.k8s.io")


def test_the_managers_rbac_from_deploy_is_enforced_as_written(
    admin: Kubectl, rbac_cluster: ThreadedCluster
) -> None:
    """``kubectl apply -k deploy/`` then ask, as the manager's ServiceAccount, what it may do:
    subresources, resourceNames and the namespaced Roles count exactly as written."""
    repo = Path(__file__).resolve().parents[2]
    rbac_cluster.call(rbac_cluster.cluster.install_crds,
                      repo / "tests/deploy/data/servicemonitors.monitoring.coreos.com.yaml")  # fmt: skip
    admin("apply", "-k", str(repo / "deploy"), "--namespace", "kaito-workspace")
    manager = "--as=system:serviceaccount:kaito-workspace:kaito-workspace"
    in_release = ("--namespace", "kaito-workspace")
    assert _can_i(admin, "patch", "workspaces.kaito.sh", "--subresource=status", manager)
    assert _can_i(admin, "update", "workspaces.kaito.sh", "--subresource=finalizers", manager)
    assert not _can_i(admin, "delete", "workspaces.kaito.sh", manager)
    assert _can_i(admin, "create", "statefulsets.apps", manager)
    assert not _can_i(admin, "create", "deployments.apps", manager)
    hook = "validatingwebhookconfigurations.admissionregistration.k8s.io"
    assert _can_i(admin, "update", f"{hook}/validation.workspace.kaito.sh", manager)
    assert not _can_i(admin, "update", f"{hook}/someone-elses", manager)
    lease = "leases.coordination.k8s.io/ef60f9b0.io"
    assert _can_i(admin, "update", lease, manager, *in_release)
    assert not _can_i(admin, "update", lease, manager)  # elsewhere
    assert _can_i(admin, "get", "secrets/workspace-webhook-cert", manager, *in_release)
    assert not _can_i(admin, "get", "secrets/registry-password", manager, *in_release)
    assert not _can_i(admin, "list", "secrets", manager, *in_release)


def test_rbac_writes_cannot_grant_more_than_the_writer_holds(
    admin: Kubectl, rbac_cluster: ThreadedCluster, tmp_path: Path
) -> None:
    config = rbac_cluster.cluster.kubeconfig_for_user("jane", ["devs"], namespace=admin.namespace)
    jane = Kubectl(write_kubeconfig(config, tmp_path / "jane.kubeconfig"), tmp_path / "cache",
                   admin.namespace)  # fmt: skip
    admin("create", "rolebinding", "jane-admin", "--clusterrole=admin", "--user=jane")
    jane("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    jane("create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs")
    too_much = jane("create", "role", "node-reader", "--verb=get", "--resource=nodes", check=False)
    assert too_much.returncode == 1
    assert (
        'roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "jane" '
        '(groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}'
    ) in too_much.stderr
    root = jane("create", "rolebinding", "jane-root", "--clusterrole=cluster-admin",
                "--user=jane", check=False)  # fmt: skip
    assert "is attempting to grant RBAC permissions not currently held" in root.stderr
    admin("create", "clusterrole", "escalator", "--verb=escalate,bind",
          "--resource=roles.rbac.authorization.k8s.io,clusterroles.rbac.authorization.k8s.io")  # fmt: skip
    admin("create", "rolebinding", "jane-escalates", "--clusterrole=escalator", "--user=jane")
    jane("create", "role", "node-reader", "--verb=get", "--resource=nodes")
    jane("create", "rolebinding", "jane-root", "--clusterrole=cluster-admin", "--user=jane")
