"""Secrets stay secret: no secret value reaches a log line, Event, status, ConfigMap, owned
object, metric or error message.

KAITO is installed from the AKS overlay with ``kubectl apply -k`` (RBAC enforced) and its
manager runs as a ``kaito manager`` process under its ServiceAccount, with an Azure client secret
in its environment, against the AKS emulator. A user creates the guide's secrets the way they
always do (``kubectl create secret docker-registry`` for the tuning push secret and a pull
secret, ``kubectl create secret generic`` for a HuggingFace token) and runs the guide's tuning
and inference Workspaces naming them, while ARM refuses the manager for a while (an error path
that carries Azure's answer into a status). Then every captured output is searched for each
secret's bytes, their base64, the docker ``auth`` field, the Secret's stored data, and the
webhook certificate's private keys and the manager's ServiceAccount token.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from kaito.cluster import AzureEmulator, AzureTimes, BootTimes, azure_emulator
from kaito.webhooks import WEBHOOK_SECRET
from tests.deploy.conftest import RELEASE_NAMESPACE, REPO
from tests.deploy.installed import Installation, eventually, installation

pytestmark = pytest.mark.kubectl

EXAMPLES = REPO / "examples"
TEAM = "team-a"
AZURE_TIMES = AzureTimes(create=0.05, update=0.02, delete=0.05, boot=BootTimes(0.05, 0.05))
REGISTRY = "myregistry.azurecr.io"


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


class Recorder:
    """Every output the test can see, by where it came from."""

    def __init__(self) -> None:
        self.outputs: dict[str, str] = {}

    def add(self, where: str, text: str) -> None:
        self.outputs[where] = self.outputs.get(where, "") + text + "\n"

    def kubectl(
        self, kaito: Installation, *args: str, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        result = kaito.kubectl(*args, **kw)
        self.add(f"kubectl {args[0]} {args[1] if len(args) > 1 else ''}".strip(),
                 result.stdout + result.stderr)  # fmt: skip
        return result

    def leaks(self, needles: dict[str, str]) -> list[str]:
        return [
            f"{what} found in {where}"
            for where, text in self.outputs.items()
            for what, needle in needles.items()
            if needle in text
        ]


def _example(rel: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / rel).read_text())
    doc["metadata"]["namespace"] = TEAM
    return doc


def _pem_lines(pem: bytes) -> list[str]:
    """The full base64 lines of a PEM block (any one of them found is a leak; a short last line
    could turn up by chance)."""
    return [line for line in pem.decode().splitlines() if len(line) == 64]


@pytest.fixture
def cluster_logs() -> Iterator[Callable[[], str]]:
    """What the in-process cluster (and anything else in this process) logs, at every level:
    structlog events and stdlib records, read with the yielded function."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as events:
            yield lambda: "\n".join([*records, *(json.dumps(e, default=str) for e in events)])
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_no_secret_value_appears_in_any_output(
    tmp_path: Path, cluster_logs: Callable[[], str]
) -> None:
    push = f"push-{secrets.token_hex(16)}"
    pull = f"pull-{secrets.token_hex(16)}"
    hf_token = f"hf_{secrets.token_hex(16)}"
    seen = Recorder()
    with installation("aks", tmp_path) as kaito, kaito.audit(everyone=True) as audit:
        azure: AzureEmulator
        with kaito.cluster.portal.wrap_async_context_manager(
            azure_emulator(kaito.cluster.cluster, times=AZURE_TIMES)
        ) as azure:
            client_secret = azure.client_secret
            env = {**azure.env(workload_identity=False), "ARM_ENDPOINT": azure.arm_url}
            assert env["AZURE_CLIENT_SECRET"] == client_secret

            # The user's secrets, made as the guide makes them.
            seen.kubectl(kaito, "create", "namespace", TEAM)
            seen.kubectl(kaito, "create", "secret", "docker-registry", "acr-registry-secret",
                         "-n", TEAM, f"--docker-server={REGISTRY}", "--docker-username=robot",
                         f"--docker-password={push}")  # fmt: skip
            seen.kubectl(kaito, "create", "secret", "docker-registry", "acr-pull-secret",
                         "-n", TEAM, f"--docker-server={REGISTRY}", "--docker-username=reader",
                         f"--docker-password={pull}")  # fmt: skip
            seen.kubectl(kaito, "create", "secret", "generic", "hf-token", "-n", TEAM,
                         f"--from-literal=HF_TOKEN={hf_token}")  # fmt: skip

            tuning = _example("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
            tuning["tuning"]["input"] = {"image": f"{REGISTRY}/dolly:1", "imagePullSecrets":
                                         ["acr-pull-secret"]}  # fmt: skip
            inference = _example("inference/kaito_workspace_phi_3.yaml")
            inference["inference"]["preset"]["presetOptions"] = {
                "modelAccessSecret": "hf-token", "imagePullSecrets": ["acr-pull-secret"],
            }  # fmt: skip
            adapters = _example("inference/kaito_workspace_phi_3_with_adapters.yaml")
            adapters["inference"]["adapters"][0]["source"]["imagePullSecrets"] = ["acr-pull-secret"]

            pod = kaito.pods()[0]
            extra = [f"--azure-ca-file={azure.ca_file}", "--log-level=debug"]
            manager = kaito.start_manager(pod, env=env, extra=extra)
            kubeconfig = yaml.safe_load(
                (tmp_path / f"{pod['metadata']['name']}.kubeconfig").read_text()
            )
            (user,) = kubeconfig["users"]
            service_account_token = user["user"]["token"]

            # ARM refuses the manager at first: Azure's answer reaches a status (the refused
            # Workspace waits minutes for a human before it retries, so it is let go).
            azure.revoke(azure.client_id)
            refused = {**inference, "metadata": {"name": "refused", "namespace": TEAM}}
            seen.kubectl(kaito, "apply", "-f", "-", stdin=yaml.safe_dump(refused))

            def refusal_reported() -> str:
                ready = kaito.conditions("refused", TEAM).get("ResourceReady", {})
                return str(ready.get("message", "")) if ready.get("status") == "False" else ""

            refusal_message = eventually(refusal_reported, within=60, what="ARM's refusal")
            azure.grant(azure.client_id)
            seen.kubectl(kaito, "describe", "workspace", "refused", "-n", TEAM)
            seen.kubectl(kaito, "delete", "workspace", "refused", "-n", TEAM, "--wait",
                         "--timeout=60s")  # fmt: skip
            seen.kubectl(kaito, "apply", "-f", "-",
                         stdin=yaml.safe_dump_all([inference, tuning, adapters]))  # fmt: skip
            for doc in (inference, tuning, adapters):
                seen.kubectl(kaito, "wait", "--for=condition=WorkspaceReady",
                             f"workspace/{doc['metadata']['name']}", "-n", TEAM,
                             "--timeout=90s")  # fmt: skip
            # The webhook's refusal of a bad Workspace naming the secrets, as the user sees it.
            bad = _example("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
            bad["metadata"]["name"] = "bad-tuning"
            bad["tuning"]["output"]["imagePushSecret"] = "Not_A_Name"
            refusal = seen.kubectl(kaito, "apply", "-f", "-", stdin=yaml.safe_dump(bad),
                                   check=False)  # fmt: skip
            assert refusal.returncode != 0 and "imagePushSecret" in refusal.stderr

            # Everything a user, an auditor or a log pipeline can read.
            for what in ("events", "workspaces", "configmaps", "statefulsets,jobs,services",
                         "pods", "leases", "deployments"):  # fmt: skip
                seen.kubectl(kaito, "get", what, "-A", "-o", "json")
            seen.kubectl(kaito, "describe", "workspaces", "-A")
            seen.add("manager metrics", manager.metrics_text())
            seen.kubectl(kaito, "delete", "workspace", "--all", "-n", TEAM, "--wait",
                         "--timeout=60s")  # fmt: skip
            assert manager.stop() == 0
            seen.add("manager log", manager.output())

            # What the secrets hold, as the API server stores them.
            stored = {
                name: kaito.get("v1", "Secret", name, TEAM)["data"]
                for name in ("acr-registry-secret", "acr-pull-secret", "hf-token")
            }
            certificate = kaito.get("v1", "Secret", WEBHOOK_SECRET, RELEASE_NAMESPACE)["data"]
    seen.add("cluster logs", cluster_logs())
    seen.add("audit", "\n".join(json.dumps(e.to_dict(), default=str) for e in audit))

    needles = {
        "push password": push, "pull password": pull, "HF token": hf_token,
        "Azure client secret": client_secret, "manager's token": service_account_token,
        "push auth": _b64(f"robot:{push}"), "pull auth": _b64(f"reader:{pull}"),
    }  # fmt: skip
    for name, value in (("push password", push), ("pull password", pull),
                        ("HF token", hf_token), ("Azure client secret", client_secret)):  # fmt: skip
        needles[f"base64 of the {name}"] = _b64(value)
    for secret, data in stored.items():
        for key, value in data.items():
            needles[f"{secret}'s {key} as stored"] = value
    keys = [k for k in certificate if k.endswith(".key")]
    assert keys, f"the webhook certificate's Secret holds no private key: {sorted(certificate)}"
    for key in keys:
        needles[f"webhook {key} as stored"] = certificate[key]
        for i, line in enumerate(_pem_lines(base64.b64decode(certificate[key]))):
            needles[f"webhook {key} line {i}"] = line

    assert len(seen.outputs) > 10 and sum(map(len, seen.outputs.values())) > 10_000
    assert "hf-token" in seen.outputs["kubectl get statefulsets,jobs,services"]  # named, not held
    assert "AuthorizationFailed" in refusal_message  # Azure's answer, as the user reads it:
    assert "AuthorizationFailed" in seen.outputs["kubectl describe workspace"]
    assert seen.leaks(needles) == []
