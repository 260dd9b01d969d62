"""The guide on one machine, as its reader runs it: ``kaito up`` (a real subprocess, its default
local kubelet, registry and model hub) driven with the real ``kubectl`` and ``curl``.

One walk through the story, in order: the push secret, the tuning Workspace until
``WorkspaceSucceeded``, the adapter image in the registry by digest, the inference Workspace with
that adapter until it is ready, ``/chat`` on the Service's cluster IP with curl and the ``openai``
client, ``kubectl logs``, the guide's ``kubectl run -it --rm ... curlimages/curl``; then a killed
runtime process (the Pod restarts, the Workspace goes not-ready saying why), a restart of
``kaito up`` on its ``--data-dir`` (objects, registry blobs and model cache resume, the kubelet
starts the Pods again), and deleting the Workspaces (every runtime process stops, every port
is freed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.streaming._terminal import run_in_terminal
from tests.guide._up import (
    INFERENCE,
    TUNING,
    Up,
    condition,
    descendants,
    eventually,
    free_ports,
    listening,
    local_manifest,
    quick_tuning,
    runtime_processes,
)

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.registry,
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
    pytest.mark.skipif(
        shutil.which("docker-registry") is None, reason="needs Debian's docker-registry"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the guide's curl uses port 80 of a cluster IP"),
]

PROMPT = "What is KAITO?"


def _chat(url: str) -> dict[str, object]:
    answer = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-X", "POST", url,
         "-H", "accept: application/json", "-H", "Content-Type: application/json",
         "-d", json.dumps({"prompt": PROMPT})],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert isinstance(body, dict)
    return body


def _cluster_ip(up: Up) -> str:
    return up.kubectl(
        "get", "svc", INFERENCE, "-o", "jsonpath={.spec.clusterIPs[0]}"
    ).stdout.strip()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_ready(up: Up, name: str, within: float) -> None:
    done = up.kubectl(
        "wait",
        "--for=condition=WorkspaceSucceeded",
        f"workspace/{name}",
        f"--timeout={within:.0f}s",
        timeout=within + 30,
        check=False,
    )
    if done.returncode != 0:
        pods = up.kubectl("describe", "pods", "-l", f"kaito.sh/workspace={name}", check=False)
        logs = up.kubectl(
            "logs", "-l", f"kaito.sh/workspace={name}", "--all-containers", "--tail=40",
            check=False,
        )  # fmt: skip
        raise AssertionError(
            f"workspace/{name} not ready: {done.stderr}\n{pods.stdout[-4000:]}\n"
            f"{logs.stdout[-4000:]}\n{up.output}"
        )


def test_the_guide_with_kubectl_and_curl(tmp_path: Path) -> None:
    started = time.monotonic()
    registry_port, files_port = free_ports(2)
    up = Up(tmp_path, ports=(registry_port, files_port))
    try:
        registry, files = up.registry(), up.files()
        up.wait_for(r"kubectl get workspace -w", 120)

        # 1. The push secret, as the guide has its reader create it for ACR.
        up.kubectl("create", "secret", "docker-registry", "local-registry-secret",
                   f"--docker-server={registry}", "--docker-username=kaito",
                   "--docker-password=local")  # fmt: skip

        # 2. The tuning Workspace of examples/local (a few steps) until WorkspaceSucceeded.
        tuning, config = quick_tuning(
            local_manifest("kaito_workspace_tuning_phi_3.yaml", registry, files), steps=6
        )
        up.kubectl("apply", "-f", "-", stdin=config)
        up.kubectl("apply", "-f", "-", stdin=tuning)
        _wait_ready(up, TUNING, 420)
        # kaito up told the story of the tuning Pod (its progress as the Pod serves it).
        up.wait_for(r"tuning workspace/workspace-tuning-phi-3: (loading|step \d+/6)", 1)
        tuned = time.monotonic()

        # 3. The adapter image is in the registry, by digest.
        head = subprocess.run(
            ["curl", "-sSI", "-H",
             "Accept: application/vnd.oci.image.manifest.v1+json,"
             "application/vnd.docker.distribution.manifest.v2+json",
             f"http://{registry}/v2/kaito/phi-3-adapter/manifests/0.0.1"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        digest = next(
            line.split(":", 1)[1].strip()
            for line in head.stdout.splitlines()
            if line.lower().startswith("docker-content-digest:")
        )
        assert digest.startswith("sha256:"), head.stdout
        by_digest = subprocess.run(
            ["curl", "-sSf", "-o", "/dev/null", "-w", "%{http_code}", "-H",
             "Accept: application/vnd.oci.image.manifest.v1+json",
             f"http://{registry}/v2/kaito/phi-3-adapter/manifests/{digest}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert by_digest.stdout == "200", by_digest.stderr

        # 4. The inference Workspace with that adapter, until ready.
        inference = local_manifest("kaito_workspace_phi_3_with_adapter.yaml", registry, files)
        up.kubectl("apply", "-f", "-", stdin=inference)
        up.wait_for(r"pulled adapter image \S+phi-3-adapter:0.0.1", 240)
        _wait_ready(up, INFERENCE, 300)
        served = time.monotonic()

        # 5. /chat on the Service's cluster IP, with curl and with the openai client.
        ip = _cluster_ip(up)
        up.wait_for(rf"workspace/{INFERENCE} answers at http://{ip}/chat", 60)
        answer = _chat(f"http://{ip}/chat")
        assert isinstance(answer.get("Result"), str), answer
        assert "NOT the real model" in str(answer.get("stand_in")), answer  # never pretends

        import openai

        client = openai.OpenAI(base_url=f"http://{ip}/v1", api_key="unused", timeout=120)
        models = [m.id for m in client.models.list().data]
        completion = client.chat.completions.create(
            model=models[0], messages=[{"role": "user", "content": PROMPT}], max_tokens=8
        )
        assert completion.choices[0].message.content is not None
        assert completion.choices[0].finish_reason in ("length", "stop")

        # 6. kubectl logs shows the runtime's own log lines.
        logs = up.kubectl("logs", "-l", f"kaito.sh/workspace={INFERENCE}", "--tail=-1").stdout
        assert "model_is_stand_in" in logs, logs[-2000:]
        assert "server_listening" in logs, logs[-2000:]

        # 7. The guide's temporary curl Pod prints the answer and is deleted.
        code, output = run_in_terminal(
            ["kubectl", "run", "-it", "--rm", "--restart=Never", "curl",
             "--image=curlimages/curl", "--", "curl", "-sS", "-X", "POST", f"http://{ip}/chat",
             "-H", "accept: application/json", "-H", "Content-Type: application/json",
             "-d", json.dumps({"prompt": PROMPT})],
            env={"KUBECONFIG": str(up.kubeconfig), "KUBECACHEDIR": str(tmp_path / "kc")},
            timeout=120,
        )  # fmt: skip
        text = output.decode(errors="replace")
        assert code == 0, text
        assert '"Result"' in text, text
        assert 'pod "curl" deleted' in text, text

        # 8. A killed runtime process: the Pod restarts, the Workspace says why, then is ready.
        pods = runtime_processes(up.proc.pid, "kaito_runtime.inference")
        assert pods, "no inference runtime process below kaito up"
        for pid, _ in pods:
            os.kill(pid, signal.SIGKILL)
        not_ready = eventually(
            lambda: (
                (c := condition(up.workspace(INFERENCE), "InferenceReady")).get("status") == "False"
                and "restarted after exit code 137" in c.get("message", "")
                and c
            ),
            60,
            "the Workspace goes not-ready, saying the container restarted after it was killed",
            interval=0.2,
        )
        assert not_ready["reason"] == "WorkspaceInferenceStatusPending", not_ready
        succeeded = condition(up.workspace(INFERENCE), "WorkspaceSucceeded")
        assert succeeded["status"] == "False", succeeded
        # (Ready again after the restart: tests/guide/test_pod_failures.py, on a fast clock.)
        killed = time.monotonic()

        # 9. kaito up stopped (Ctrl-C) and started again on its --data-dir resumes: the
        # objects, the registry's blobs, the model cache; the kubelet starts the Pods again.
        running = [pid for pid, _ in runtime_processes(up.proc.pid)]
        assert up.stop() == 0, up.output
        assert not listening("127.0.0.1", int(registry.rsplit(":", 1)[1]))
        eventually(lambda: not [p for p in running if _alive(p)], 10, "the runtimes end")
        up = Up(tmp_path, ports=(registry_port, files_port))
        registry = up.registry()
        up.wait_for(r"resuming the cluster kept in", 60)
        up.wait_for(r"kubectl get workspace -w", 120)
        assert condition(up.workspace(TUNING), "WorkspaceSucceeded").get("status") == "True"
        eventually(
            lambda: runtime_processes(up.proc.pid, "kaito_runtime.inference"),
            60,
            "the kubelet runs the inference Pod again",
        )
        assert "building the stand-in" not in up.output, up.output  # the model cache is kept
        blob = subprocess.run(
            ["curl", "-sSf", "-o", "/dev/null", "-w", "%{http_code}", "-H",
             "Accept: application/vnd.oci.image.manifest.v1+json",
             f"http://{registry}/v2/kaito/phi-3-adapter/manifests/{digest}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert blob.stdout == "200", blob.stderr
        resumed = time.monotonic()

        # 10. Deleting the Workspaces stops every runtime process and frees every Pod's port.
        pod_ips = up.kubectl(
            "get", "pods", "-l", "kaito.sh/workspace", "-o", "jsonpath={.items[*].status.podIP}"
        ).stdout.split()
        assert pod_ips
        up.kubectl("delete", "workspace", "--all", "--wait", "--timeout=120s", timeout=180)
        eventually(lambda: not runtime_processes(up.proc.pid), 60, "every runtime process ends")
        eventually(
            lambda: not up.kubectl("get", "pods", "-o", "name").stdout.strip(),
            60,
            "every Pod is gone",
        )
        for ip in pod_ips:
            assert not listening(ip, 5000), ip
        api_port = int(up.wait_for(r"API server https://127.0.0.1:(\d+)", 1).group(1))
        children = [pid for pid, _ in descendants(up.proc.pid)]
        assert up.stop() == 0, up.output
        for port in (api_port, files_port, int(registry.rsplit(":", 1)[1])):
            assert not listening("127.0.0.1", port), port
        eventually(lambda: not [p for p in children if _alive(p)], 10, "every child ends")
        print(
            f"guide_e2e: tuned={tuned - started:.0f}s served={served - tuned:.0f}s "
            f"killed={killed - served:.0f}s resumed={resumed - killed:.0f}s "
            f"total={time.monotonic() - started:.0f}s"
        )
    finally:
        up.stop()
