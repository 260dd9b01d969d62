"""The three front doors agree: ``kaito validate``, the admission webhook (``kaito.webhooks``) and
the in-process API server (with the webhook registered, through the real ``kubectl apply
--dry-run=server`` and through plain HTTP) give the same verdict and the same field paths on
generated Workspaces, valid and invalid (issue 11).

The field paths compared are those the API server reports: the errors of the first stage that
refuses the document (strict decoding, then the schema, then the webhook's rules).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import attrs
import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaito.api import ValidationContext
from kaito.apimachinery import decode_yaml, merge_patch
from kaito.cli import main
from kaito.embedded import embedded_kaito
from kaito.options import ManagerOptions
from kaito.webhooks import validate_review
from tests.support.fuzz import FuzzBudget, fuzz_seconds, hypothesis_budget

pytestmark = pytest.mark.kubectl

DELETE = None  # a merge patch's null removes the key
BASES: dict[str, dict[str, Any]] = {
    "inference-v1beta1": {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "ws"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"apps": "phi-4"}},
        },
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    },
    "inference-v1alpha1": {
        "apiVersion": "kaito.sh/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": "ws-alpha"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"apps": "phi-4"}},
        },
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    },
    "tuning-v1beta1": {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "tune"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"app": "tuning"}},
        },
        "tuning": {
            "preset": {"name": "phi-3-mini-128k-instruct"},
            "method": "qlora",
            "input": {"urls": ["https://example.com/data/train.parquet"]},
            "output": {"image": "myregistry.azurecr.io/adapter:0.0.1", "imagePushSecret": "push"},
        },
    },
}
ADAPTER = {"source": {"name": "a", "image": "myregistry.azurecr.io/a:1"}}
MUTATIONS: list[tuple[str, Any]] = [
    # wrong types
    ("resource.count", "2"),
    ("resource.count", True),
    ("resource.count", 1.5),
    ("resource.count", 99999999999999999999),
    ("resource.instanceType", 5),
    ("resource.labelSelector", ["apps"]),
    ("inference.preset", "phi-4"),
    ("inference.adapters", {"a": 1}),
    # out of range and bad enums
    ("resource.count", 0),
    ("inference.preset.accessMode", "secret"),
    ("tuning.method", "dora"),
    ("resource.partition", {"mode": "slices"}),
    # unknown fields
    ("resource.bogus", 1),
    ("bogus", {"x": 1}),
    ("inference.preset.extra", "x"),
    ("metadata.bogusMeta", "x"),
    # missing required
    ("resource.labelSelector", DELETE),
    ("inference.preset.name", DELETE),
    ("tuning.input", DELETE),
    # bad names and labels
    ("metadata.name", "Bad_Name"),
    ("metadata.name", "a" * 70),
    ("metadata.name", "a.b"),
    ("metadata.labels", {"team": "a b"}),
    ("metadata.annotations", {"Bad Key": "x"}),
    # bad strengths
    ("inference.adapters", [{**ADAPTER, "strength": "1.5"}]),
    ("inference.adapters", [{**ADAPTER, "strength": "abc"}]),
    ("inference.adapters", [{**ADAPTER, "strength": 0.5}]),
    ("inference.adapters", [{**ADAPTER, "strength": "0.5"}]),
    ("inference.adapters", [ADAPTER] * 11),
    # the rules
    ("resource.instanceType", "m5.large"),
    ("inference.preset.name", "phi-5"),
    ("inference.config", "no-such-config"),
    ("tuning.output.imagePushSecret", DELETE),
]


def mutate(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at the dotted ``path`` of ``doc`` (``DELETE`` removes it): a JSON merge patch."""
    patch: Any = copy.deepcopy(value)
    for part in reversed(path.split(".")):
        patch = {part: patch}
    merge_patch(doc, patch)


@st.composite
def workspaces(draw: st.DrawFn) -> str:
    """A Workspace document as a user writes it (JSON text, which is YAML too)."""
    doc = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for path, value in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2, unique_by=repr)):
        if path.split(".")[0] in ("inference", "tuning") and path.split(".")[0] not in doc:
            continue
        mutate(doc, path, value)
    return json.dumps(doc)


@attrs.frozen
class Verdict:
    valid: bool
    fields: frozenset[str]


def _status_fields(status: dict[str, Any]) -> frozenset[str]:
    message = str(status.get("message", ""))
    if status.get("code") == 400 and "strict decoding error" in message:
        return frozenset(re.findall(r'(?:unknown|duplicate) field "([^"]+)"', message))
    if status.get("code") == 400 and "cannot be handled as" in message:
        return frozenset({"metadata"}) if ": metadata: " in message else frozenset()
    return frozenset(c.get("field", "") for c in (status.get("details") or {}).get("causes", []))


@attrs.define
class FrontDoors:
    tmp: Path
    kubeconfig: Path
    http: httpx.Client

    def kaito_validate(self, text: str) -> Verdict:
        path = self.tmp / "ws.json"
        path.write_text(text)
        result = CliRunner().invoke(main, ["validate", "-o", "json", str(path)])
        assert result.exit_code in (0, 1), result.output
        (entry,) = json.loads(result.output)
        stage = entry.get("refusedAt")
        fields = {p["field"] for p in entry["problems"] if p.get("stage") == stage}
        return Verdict(result.exit_code == 0, frozenset(fields))

    def webhook(self, text: str) -> Verdict:
        obj = decode_yaml(text).value  # what the API server decodes from kubectl's request
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "operation": "CREATE", "namespace": "default", "object": obj},
        }
        # The cluster is known and holds no ConfigMap of the user's (as in kaito validate's input).
        response = validate_review(review, ValidationContext(config_maps={}))["response"]
        if response["allowed"]:
            return Verdict(True, frozenset())
        return Verdict(False, _status_fields(response["status"]))

    def server(self, text: str) -> Verdict:
        """POST with ``dryRun=All&fieldValidation=Strict``, as kubectl sends it."""
        kind = json.loads(text)["apiVersion"].split("/")[1]
        response = self.http.post(
            f"/apis/kaito.sh/{kind}/namespaces/default/workspaces",
            params={"dryRun": "All", "fieldValidation": "Strict"},
            content=text,
        )
        if response.status_code == 201:
            return Verdict(True, frozenset())
        return Verdict(False, _status_fields(response.json()))

    def kubectl(self, text: str) -> Verdict:
        result = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(self.kubeconfig),
                "--cache-dir",
                str(self.tmp / "kube-cache"),
                "-n",
                "default",
                "apply",
                "--dry-run=server",
                "-f",
                "-",
                "-v=9",
            ],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode == 0:
            return Verdict(True, frozenset())
        bodies = re.findall(r'"Response Body" body="((?:[^"\\]|\\.)*)"', result.stderr)
        statuses = [json.loads(json.loads(f'"{b}"')) for b in bodies if "Status" in b]
        failures = [s for s in statuses if s.get("kind") == "Status" and s.get("code") != 404]
        assert failures, result.stderr[-2000:]
        return Verdict(False, _status_fields(failures[-1]))


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoors]:
    tmp = tmp_path_factory.mktemp("parity")
    options = ManagerOptions(metrics_address=None, probe_address=None)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(
            embedded_kaito(kubeconfig_out=tmp / "kubeconfig", options=options)
        ) as kaito,
    ):
        cluster = kaito.cluster
        headers = {"Authorization": f"Bearer {cluster.token}"} if cluster.token else {}
        verify = cluster.client_ssl_context() or True
        with httpx.Client(base_url=cluster.url, headers=headers, verify=verify, timeout=30) as c:
            yield FrontDoors(tmp, tmp / "kubeconfig", c)


def check(doors: FrontDoors, text: str, *, kubectl: bool) -> None:
    expected = doors.kaito_validate(text)
    assert doors.webhook(text) == expected, text
    assert doors.server(text) == expected, text
    if kubectl:
        assert doors.kubectl(text) == expected, text


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(BASES["inference-v1beta1"]),
        json.dumps({**BASES["tuning-v1beta1"], "bogus": 1}),
        json.dumps(
            {
                **BASES["inference-v1alpha1"],
                "inference": {"preset": {"name": "phi-4-mini-instruct", "accessMode": "secret"}},
            }
        ),
        json.dumps({**BASES["inference-v1beta1"], "metadata": {"name": "Bad_Name"}}),
        json.dumps({**BASES["inference-v1beta1"], "inference": {"preset": {"name": "phi-5"}}}),
    ],
    ids=["valid", "unknown-field", "bad-enum", "bad-name", "rule"],
)
def test_kubectl_and_the_other_doors_agree_on_typical_documents(
    doors: FrontDoors, text: str
) -> None:
    check(doors, text, kubectl=True)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=workspaces())
def test_generated_workspaces_get_one_verdict(doors: FrontDoors, text: str) -> None:
    """Many documents through kaito validate, the webhook and the server over HTTP."""
    check(doors, text, kubectl=False)


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=workspaces())
def test_generated_workspaces_get_one_verdict_through_kubectl(doors: FrontDoors, text: str) -> None:
    check(doors, text, kubectl=True)


@pytest.mark.fuzz
def test_front_doors_agree_fuzz(doors: FrontDoors) -> None:
    budget = FuzzBudget()

    @settings(hypothesis_budget(), max_examples=max(10, int(15 * fuzz_seconds())))
    @given(text=workspaces(), through_kubectl=st.booleans())
    def run(text: str, through_kubectl: bool) -> None:
        if not budget.spend():
            return
        check(doors, text, kubectl=through_kubectl)

    run()
    budget.report("front doors (kaito validate, webhook, API server, kubectl)")
