"""Environment and volumes as Kubernetes builds them: literals, $(VAR), ConfigMap and Secret
references, the downward API, and volumes written as files and mounted at their paths."""

from __future__ import annotations

import base64
import json
import os

import pytest

from tests.cluster.kubelet._helpers import SLEEP_THEN_UP, Local, exists, phase, pod, sh, state

pytestmark = pytest.mark.anyio


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _setup_sources(local: Local) -> None:
    await local.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {
                "MODE": "fast",
                "config.yaml": "replicas: 2\n",
                "1st": "digits first are fine in 1.32",
            },
        }
    )
    await local.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"TOKEN": b64("s3cret"), "user": b64("kaito")},
        }
    )


async def test_environment_is_built_as_the_kubelet_builds_it(local: Local) -> None:
    await _setup_sources(local)
    env = [
        {"name": "BASE", "value": "/data"},
        {"name": "DERIVED", "value": "$(BASE)/models and $$(BASE) and $(MISSING)"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {
            "name": "MEM_MI",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
        },
        {
            "name": "CPU_M",
            "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
        },
        {"name": "MODE_REF", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
        {"name": "TOKEN_REF", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
        {
            "name": "OPTIONAL",
            "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}},
        },
    ]
    script = 'env; echo "args: $0 $1"'
    await local.create(
        pod(
            "env",
            {
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", script, "$(POD_NAME)", "$(BASE)/x"],
                "env": env,
                "envFrom": [
                    {"prefix": "CFG_", "configMapRef": {"name": "settings"}},
                    {"prefix": "SEC_", "secretRef": {"name": "creds"}},
                ],
                "resources": {
                    "limits": {"memory": "256Mi", "cpu": "1"},
                    "requests": {"cpu": "250m"},
                },
            },
            restartPolicy="Never",
            labels={"app": "demo"},
            annotations={"note": "hello"},
        )
    )
    done = await local.wait("env", lambda p: phase(p) == "Succeeded")
    output = (await local.logs("env")).decode().splitlines()
    values = dict(line.split("=", 1) for line in output[:-1] if "=" in line)
    status = done["status"]
    expected = {
        "BASE": "/data",
        "DERIVED": "/data/models and $(BASE) and $(MISSING)",
        "POD_IP": status["podIP"],
        "NODE_IP": status["hostIP"],
        "POD_NAME": "env",
        "POD_NS": "t",
        "NODE": "kaito-system",
        "APP": "demo",
        "NOTE": "hello",
        "MEM_MI": "256",
        "CPU_M": "250",
        "MODE_REF": "fast",
        "TOKEN_REF": "s3cret",
        "CFG_MODE": "fast",
        "SEC_user": "kaito",
        "HOSTNAME": "env",
    }
    assert {k: values.get(k) for k in expected} == expected
    assert "OPTIONAL" not in values
    # Kubernetes 1.32 accepts any printable name but '=' (RelaxedEnvironmentVariableValidation).
    assert values["CFG_1st"] == "digits first are fine in 1.32"
    assert values["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert (await local.logs("env")).decode().splitlines()[-1] == "args: env /data/x"


async def test_a_missing_config_map_holds_the_container_until_it_exists(local: Local) -> None:
    await local.create(
        pod(
            "waits",
            sh(
                "echo $MODE",
                env=[
                    {
                        "name": "MODE",
                        "valueFrom": {"configMapKeyRef": {"name": "later", "key": "MODE"}},
                    }
                ],
            ),
            restartPolicy="Never",
        )
    )
    waiting = await local.wait(
        "waits",
        lambda p: (state(p).get("waiting") or {}).get("reason") == "CreateContainerConfigError",
    )
    assert state(waiting)["waiting"]["message"] == 'configmap "later" not found'
    await local.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "later"},
            "data": {"MODE": "ok"},
        }
    )
    await local.clock.advance_when_due(10)
    await local.wait("waits", lambda p: phase(p) == "Succeeded")
    assert await local.logs("waits") == b"ok\n"


async def test_volumes_are_written_as_files_with_their_modes(local: Local) -> None:
    await _setup_sources(local)
    host_dir = local.tmp / "host-data"
    host_dir.mkdir()
    (host_dir / "from-host.txt").write_text("host file\n")
    script = (
        "cat /etc/cfg/config.yaml /etc/cfg-items/renamed.yaml /etc/creds/TOKEN; echo; "
        "stat -c '%a %n' /etc/cfg-items/renamed.yaml /etc/creds/TOKEN; "
        "cat /etc/podinfo/labels; echo; cat /etc/podinfo/name; echo; "
        "cat /etc/projected/user /etc/projected/ns; echo; "
        "cat /mnt/host/from-host.txt; echo written > /mnt/host/from-pod.txt; "
        "cat /data/sub/only.txt; stat -f -c %T /dev/shm /scratch; "
        "touch /etc/cfg/new 2>/dev/null || echo configmap read-only"
    )
    await local.create(
        pod(
            "files",
            sh(
                script,
                volumeMounts=[
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "cfg-items", "mountPath": "/etc/cfg-items"},
                    {"name": "creds", "mountPath": "/etc/creds"},
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                    {"name": "projected", "mountPath": "/etc/projected"},
                    {"name": "host", "mountPath": "/mnt/host"},
                    {"name": "scratch", "mountPath": "/data/sub", "subPath": "inner"},
                    {"name": "memory", "mountPath": "/dev/shm"},
                    {"name": "disk", "mountPath": "/scratch"},
                ],
            ),
            initContainers=[
                sh(
                    "mkdir -p /scratch/inner; echo from init > /scratch/inner/only.txt",
                    name="prepare",
                    volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                )
            ],
            restartPolicy="Never",
            labels={"app": "demo", "tier": "web"},
            volumes=[
                {"name": "cfg", "configMap": {"name": "settings"}},
                {
                    "name": "cfg-items",
                    "configMap": {
                        "name": "settings",
                        "items": [{"key": "config.yaml", "path": "renamed.yaml", "mode": 0o600}],
                    },
                },
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        ]
                    },
                },
                {
                    "name": "projected",
                    "projected": {
                        "sources": [
                            {
                                "secret": {
                                    "name": "creds",
                                    "items": [{"key": "user", "path": "user"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "ns",
                                            "fieldRef": {"fieldPath": "metadata.namespace"},
                                        }
                                    ]
                                }
                            },
                        ]
                    },
                },
                {"name": "host", "hostPath": {"path": str(host_dir), "type": "Directory"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "memory", "emptyDir": {"medium": "Memory"}},
                {"name": "disk", "emptyDir": {}},
            ],
        )
    )
    await local.wait("files", lambda p: phase(p) == "Succeeded")
    lines = (await local.logs("files")).decode().splitlines()
    assert lines[:3] == ["replicas: 2", "replicas: 2", "s3cret"]
    assert lines[3:5] == ["600 /etc/cfg-items/renamed.yaml", "400 /etc/creds/TOKEN"]
    assert lines[5:7] == ['app="demo"', 'tier="web"']
    assert lines[7:9] == ["files", "kaitot"]
    assert lines[9] == "host file"
    assert lines[10] == "from init"
    assert lines[11] == "tmpfs"
    assert lines[12] != "tmpfs"
    assert lines[13] == "configmap read-only"
    assert (host_dir / "from-pod.txt").read_text() == "written\n"


async def test_a_missing_config_map_volume_is_a_failed_mount(local: Local) -> None:
    await local.create(
        pod(
            "nomount",
            sh("true", volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}]),
            volumes=[{"name": "cfg", "configMap": {"name": "absent"}}],
        )
    )
    event = await local.wait_event("nomount", "FailedMount")
    assert (
        event["message"]
        == 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found'
    )
    current = await local.pod("nomount")
    assert state(current)["waiting"]["reason"] == "ContainerCreating"


async def test_memory_volumes_and_secrets_leave_nothing_behind(local: Local) -> None:
    await _setup_sources(local)
    await local.create(
        pod(
            "cleanup",
            sh("echo x > /cache/x; " + SLEEP_THEN_UP + "; wait $!",
               volumeMounts=[{"name": "cache", "mountPath": "/cache"}, {"name": "creds", "mountPath": "/creds"}]),
            volumes=[{"name": "cache", "emptyDir": {"medium": "Memory"}}, {"name": "creds", "secret": {"secretName": "creds"}}],
        )
    )  # fmt: skip
    await local.follow_until("cleanup", b"up\n")
    memory = local.kubelet.memory_root
    assert memory is not None
    uid = (await local.pod("cleanup"))["metadata"]["uid"]
    assert (memory / uid / "cache" / "x").read_text() == "x\n"
    assert (memory / uid / "creds" / "TOKEN").read_text() == "s3cret"
    await local.cluster.client.delete("v1", "Pod", "cleanup", "t")
    await local.kubelet.wait_stopped("t", "cleanup")
    assert not exists(memory / uid)
    assert not exists(local.tmp / "kubelet" / "pods" / uid)
    assert os.listdir(memory) == []


async def test_projected_service_account_tokens_come_from_the_cluster(local: Local) -> None:
    await local.wait_service_account("default")
    await local.create(
        pod(
            "token",
            sh(
                "cat /var/run/secrets/tokens/api-token",
                volumeMounts=[{"name": "tokens", "mountPath": "/var/run/secrets/tokens"}],
            ),
            restartPolicy="Never",
            volumes=[
                {
                    "name": "tokens",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "path": "api-token",
                                    "audience": "kaito-api",
                                    "expirationSeconds": 3600,
                                }
                            }
                        ]
                    },
                }
            ],
        )
    )
    done = await local.wait("token", lambda p: phase(p) == "Succeeded")
    token = (await local.logs("token")).decode()
    _, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == ["kaito-api"]
    assert claims["sub"] == "system:serviceaccount:t:default"
    assert claims["kubernetes.io"]["pod"] == {"name": "token", "uid": done["metadata"]["uid"]}
    assert signature
