"""Issue 13, "Authentication on one machine": ``kaito up`` and ``kaito cluster serve`` serve TLS
with the credentials in the kubeconfig they write (mode 0600), refuse anonymous requests, and
refuse a token over plain HTTP instead of writing a kubeconfig kubectl cannot use."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from kaito.cli import main
from kaito.cluster._kubeconfig import build_kubeconfig, write_kubeconfig

REPO = Path(__file__).resolve().parents[2]
ENTRY = "from kaito.cli import main; main()"


@contextmanager
def _running(*args: str, cwd: Path, ready: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(ready):
                break
        else:
            pytest.fail("".join(lines) + (proc.stderr.read() if proc.stderr else ""))
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _server_and_ca(kubeconfig: Path) -> tuple[str, str]:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    return cluster["server"], base64.b64decode(cluster["certificate-authority-data"]).decode()


def _anonymous(kubeconfig: Path) -> httpx.Client:
    server, ca = _server_and_ca(kubeconfig)
    import ssl

    return httpx.Client(base_url=server, verify=ssl.create_default_context(cadata=ca), timeout=10)


def _kubectl(kubeconfig: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.kubectl
def test_cluster_serve_is_for_the_kubeconfig_owner_only(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "k.yaml"
    kubeconfig.write_text("stale")
    kubeconfig.chmod(0o644)
    with _running("cluster", "serve", "--kubeconfig-out", str(kubeconfig), "--token", "s3cret",
                  "--log-level", "warning", cwd=tmp_path, ready="cluster ready at"):  # fmt: skip
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
        assert set(user) == {"client-certificate-data", "client-key-data", "token"}
        with _anonymous(kubeconfig) as anonymous:
            secrets = anonymous.get("/api/v1/namespaces/default/secrets")
            assert secrets.status_code == 401
            assert secrets.json()["reason"] == "Unauthorized"
            assert anonymous.get("/version").status_code == 200
        whoami = _kubectl(kubeconfig, tmp_path, "auth", "whoami", "-o", "jsonpath={.status}")
        assert '"username":"kaito-admin"' in whoami.stdout, whoami.stderr
        assert "system:masters" in whoami.stdout
        # Over TLS the token is sent, and accepted on its own.
        server, ca = _server_and_ca(kubeconfig)
        token_only = tmp_path / "token.yaml"
        write_kubeconfig(build_kubeconfig(server, ca_pem=ca.encode(), token="s3cret"), token_only)
        by_token = _kubectl(token_only, tmp_path, "auth", "whoami", "-o", "jsonpath={.status}")
        assert '"username":"kaito-admin"' in by_token.stdout, by_token.stderr


def test_a_token_over_plain_http_is_refused() -> None:
    result = CliRunner().invoke(
        main, ["cluster", "serve", "--no-tls", "--token", "s3cret", "--kubeconfig-out", "k"]
    )
    assert result.exit_code == 2
    assert "--token needs TLS: kubectl and client-go never send a bearer token over plain HTTP" in (
        result.output
    )
    no_kubeconfig = CliRunner().invoke(main, ["cluster", "serve"])
    assert no_kubeconfig.exit_code == 2
    assert "--kubeconfig-out is required with TLS" in no_kubeconfig.output


def test_plain_http_warns_that_anyone_on_the_machine_can_use_it(tmp_path: Path) -> None:
    with _running("cluster", "serve", "--no-tls", "--kubeconfig-out", str(tmp_path / "k"),
                  "--log-level", "warning", "--no-controllers", cwd=tmp_path,
                  ready="cluster ready at http://") as (proc, _):  # fmt: skip
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        assert "anyone on this machine can use this cluster" in proc.stderr.read()


@pytest.mark.kubectl
def test_kaito_up_is_for_the_kubeconfig_owner_only(tmp_path: Path) -> None:
    manifest = REPO / "examples/inference/kaito_workspace_phi_3.yaml"
    with _running(
        "up",
        "--kubelet",
        "simulated",
        "--apply",
        str(manifest),
        cwd=tmp_path,
        ready="KAITO is up: API server https://",
    ):
        kubeconfig = tmp_path / "kaito.kubeconfig"
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        with _anonymous(kubeconfig) as anonymous:
            assert anonymous.get("/api/v1/secrets").status_code == 401
            assert anonymous.get("/apis/kaito.sh/v1beta1/workspaces").status_code == 401
        listed = _kubectl(kubeconfig, tmp_path, "get", "workspace", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        assert "workspace.kaito.sh/workspace-phi-3-mini" in listed.stdout
