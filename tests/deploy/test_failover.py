"""Two replicas for real: two ``kaito manager`` processes, each with its pod's token, against the
cluster deploy/ was applied to. Only the leader reconciles (the standby writes nothing); SIGKILL
of the leader hands over within the lease time; no work is lost and none is done twice (every
object the manager owns created exactly once, counted in the API server's audit of writes)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaito.cluster import AuditEvent
from tests.deploy.conftest import RELEASE_NAMESPACE, REPO
from tests.deploy.installed import ManagerProcess, eventually, installation, summarize

pytestmark = pytest.mark.kubectl

LEASE, RENEW, RETRY = 3.0, 2.0, 0.25
TIMINGS = [f"--leader-election-lease-duration={LEASE}",
           f"--leader-election-renew-deadline={RENEW}",
           f"--leader-election-retry-period={RETRY}"]  # fmt: skip
EXAMPLE = REPO / "examples" / "inference" / "kaito_workspace_phi_3.yaml"
POD_NAME = "authentication.kubernetes.io/pod-name"


def _workspace(name: str, label: str) -> dict[str, Any]:
    ws: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    ws["metadata"] = {"name": name, "namespace": "default"}
    ws["resource"]["labelSelector"]["matchLabels"] = {"apps": label}
    return ws


def _leader(replicas: list[ManagerProcess]) -> ManagerProcess:
    def leading() -> list[ManagerProcess]:
        return [r for r in replicas
                if "leader_election_master_status" in (text := r.metrics_text())
                and 'leader_election_master_status{name="ef60f9b0.io"} 1.0' in text]  # fmt: skip

    (leader,) = eventually(leading, what="one leader")
    return leader


def _pod(event: AuditEvent) -> str:
    return event.extra.get(POD_NAME, ("?",))[0]


def test_only_the_leader_reconciles_and_a_killed_leader_hands_over(tmp_path: Path) -> None:
    with installation("karpenter", tmp_path) as kaito:
        pods = kaito.pods()
        with kaito.audit() as events:
            replicas = [kaito.start_manager(pod, extra=TIMINGS, wait=False) for pod in pods]
            for replica in replicas:  # started together, as a Deployment's pods are
                replica.wait_ready()
            leader = _leader(replicas)
            (standby,) = [r for r in replicas if r is not leader]
            kaito.register_webhook(standby.webhook)  # admission works through any replica
            kaito.apply(_workspace("before-failover", "before"))
            kaito.kubectl("wait", "--for=condition=WorkspaceReady", "workspace/before-failover",
                          "--timeout=60s")  # fmt: skip
            before = list(events)

            leader.kill()  # no release of the Lease: the standby must wait it out
            killed_at = dt.datetime.now(dt.UTC)  # a renewal in flight may still be read after
            kaito.apply(_workspace("after-failover", "after"))
            kaito.kubectl("wait", "--for=condition=WorkspaceReady", "workspace/after-failover",
                          "--timeout=60s")  # fmt: skip
            kaito.kubectl("delete", "workspace", "--all", "--wait", "--timeout=60s")
            assert standby.stop() == 0
        message = summarize(events)

        # Before the failover the standby did no reconcile work: it read, watched, campaigned for
        # the Lease (never winning it) and, as every replica does, kept the webhook certificate,
        # of which one replica stored the first and the other adopted it.
        keeping = {"secrets", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"}
        standby_writes = [e for e in before if _pod(e) == standby.pod and e.is_write
                          and e.resource not in keeping | {"leases"}]  # fmt: skip
        assert standby_writes == [], summarize(standby_writes)
        won = [e for e in before if _pod(e) == standby.pod and e.resource == "leases"
               and e.is_write and e.code < 300]  # fmt: skip
        assert won == [], summarize(won)
        assert any(_pod(e) == leader.pod and e.resource == "statefulsets" for e in before)
        stored = [e for e in events if e.resource == "secrets" and e.is_write and e.code < 300]
        assert len(stored) == 1, summarize(stored)

        # It took the Lease over within the lease time of the leader's last renewal.
        renewals = [e for e in events if e.resource == "leases" and e.verb == "update"
                    and e.code == 200]  # fmt: skip
        last = max(e.received for e in renewals if _pod(e) == leader.pod and e.received)
        taken = min(e.received for e in renewals if _pod(e) == standby.pod and e.received)
        assert last < taken
        assert killed_at < taken
        assert (taken - last).total_seconds() <= LEASE + 2 * RETRY + 1.0, (last, taken)
        assert (taken - last).total_seconds() >= LEASE - 0.5  # never sooner than the lease

        # No doubled work: every owned object was created once, by one replica, and the
        # survivor recreated nothing the leader had made.
        creates = [e for e in events if e.verb == "create" and e.resource in (
            "services", "configmaps", "statefulsets", "jobs", "nodeclaims")]  # fmt: skip
        counted = Counter((e.resource, e.namespace, e.name) for e in creates)
        assert all(n == 1 for n in counted.values()), message
        assert all(e.code == 201 for e in creates), message
        made_by = {(e.resource, e.name): _pod(e) for e in creates}
        assert made_by[("statefulsets", "before-failover")] == leader.pod
        assert made_by[("statefulsets", "after-failover")] == standby.pod
        # No lost work: the survivor finished the old Workspace's deletion too.
        assert kaito.list("karpenter.sh/v1", "NodeClaim") == []
        lease = kaito.get("coordination.k8s.io/v1", "Lease", "ef60f9b0.io", RELEASE_NAMESPACE)
        assert lease["spec"].get("holderIdentity") in ("", None)  # released on a clean stop
