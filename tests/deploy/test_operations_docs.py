"""The operator's docs stay true: docs/metrics.md lists exactly the metric families a manager
exports (as ``deploy/`` runs it: leader election, a node backend, the certificate keeper) and its
example alert rules only use those; docs/troubleshooting.md explains every condition reason the
controller and the node backends set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaito.api.constants import Reason
from kaito.cluster import start_cluster
from kaito.engine import load_client
from kaito.operator import WebhookServing, build_operator, make_provisioner
from kaito.options import ManagerOptions
from kaito.tls import generate_serving_certificate
from kaito.webhooks import WebhookCertificates
from kaito_provisioners import reasons
from tests.deploy.conftest import REPO

DOCS = REPO / "docs"
#: Reasons set outside the constants (admission refused at the controller).
EXTRA_REASONS = {"InvalidWorkspace"}
#: Series Prometheus makes itself, named in the alert rules.
PROMETHEUS_SERIES = {"up"}


async def _exported_families(tmp_path: Path) -> dict[str, str]:
    """The families (name as scraped -> type) of a manager built as ``deploy/`` runs it."""
    from prometheus_client.exposition import generate_latest

    async with start_cluster() as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        client = await load_client(str(tmp_path / "kubeconfig"))
        try:
            options = ManagerOptions(node_provisioner="fake", leader_elect=True)
            keeper = WebhookCertificates(
                client, namespace="kaito-workspace", service="kaito-workspace-webhook",
                service_namespace="kaito-workspace", service_port=443,
            )  # fmt: skip
            serving = WebhookServing(generate_serving_certificate(["x"]), certificates=keeper)
            operator = build_operator(
                options, client, make_provisioner(options, client), webhooks=serving
            )
            text = generate_latest(operator.manager.registry).decode()
        finally:
            await client.close()
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def _documented_metrics() -> dict[str, str]:
    table = (DOCS / "metrics.md").read_text().split("## What is exported", 1)[1]
    table = table.split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z_:]+)` \| (\w+) \|", table, re.MULTILINE))


def _alert_rules() -> list[dict[str, Any]]:
    text = (DOCS / "metrics.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    doc = yaml.safe_load(block)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


@pytest.mark.anyio
async def test_metrics_doc_lists_exactly_what_the_manager_exports(tmp_path: Path) -> None:
    exported = await _exported_families(tmp_path)
    assert _documented_metrics() == exported


@pytest.mark.anyio
async def test_alert_rules_use_only_exported_series(tmp_path: Path) -> None:
    exported = await _exported_families(tmp_path)
    names = set(exported) | PROMETHEUS_SERIES
    names |= {f"{n}_{s}" for n, t in exported.items() if t == "histogram"
              for s in ("bucket", "sum", "count")}  # fmt: skip
    rules = _alert_rules()
    assert len(rules) >= 10
    used: set[str] = set()
    for rule in rules:
        assert rule["alert"].startswith("Kaito") and rule["labels"]["severity"] in (
            "warning", "critical",
        ), rule  # fmt: skip
        expr = rule["expr"]
        metrics = set(re.findall(r"\b([a-z_]+:?[a-z_]*)(?=\{)", expr))
        assert metrics, f"{rule['alert']}: no metric selector in {expr!r}"
        assert metrics <= names, f"{rule['alert']}: {sorted(metrics - names)} not exported"
        assert expr.count("(") == expr.count(")"), rule["alert"]
        used |= metrics
    # The families an operator must watch each have a rule.
    for family in ("leader_election_master_status", "controller_runtime_reconcile_errors_total",
                   "kaito_webhook_certificate_expiration_timestamp_seconds",
                   "kaito_provisioner_errors_total"):  # fmt: skip
        assert family in used, family


def test_troubleshooting_explains_every_condition_reason() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    constants = {v for k, v in vars(Reason).items() if k.isupper()}
    backend = {getattr(reasons, name) for name in reasons.__all__ if name != "FIXES"}
    missing = sorted(r for r in constants | backend | EXTRA_REASONS if f"`{r}`" not in text)
    assert missing == []
