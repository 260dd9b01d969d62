"""The guide, run end to end on the local cluster: tune Phi-3 into an adapter image, serve Phi-3
with that adapter, and ask the Service's ``/chat``.

Top layer (``kaito up --guide``). Each step is what the guide has its reader do with kubectl,
done through the API server (the same requests), and said with the command a reader would type:
the registry push secret (``kubectl create secret docker-registry``), the tuning Workspace of
``examples/local`` until ``WorkspaceSucceeded``, the adapter image checked in the registry by
digest, the inference Workspace with that adapter until it is ready, then ``POST /chat`` on the
Service's cluster IP.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import attrs
import structlog
import yaml

from kaito.cluster import Cluster, StatusError
from kaito.local._registry import LocalRegistry
from kaito.local._report import chat_url
from kaito.local._stack import LocalStack

__all__ = (
    "GUIDE_INFERENCE",
    "GUIDE_PROMPT",
    "GUIDE_TUNING",
    "GuideError",
    "GuideResult",
    "guide_manifests",
    "run_guide",
)

log = structlog.get_logger(__name__)

GUIDE_TUNING: Final = "kaito_workspace_tuning_phi_3.yaml"
GUIDE_INFERENCE: Final = "kaito_workspace_phi_3_with_adapter.yaml"
GUIDE_PROMPT: Final = "What is KAITO?"
PUSH_SECRET: Final = "local-registry-secret"
_EXAMPLE_REGISTRY: Final = "localhost:5000"
_EXAMPLE_FILES: Final = "http://localhost:5001"
_POLL: Final = 0.5


class GuideError(Exception):
    """A step of the guide failed; the message says which and why."""


@attrs.frozen
class GuideResult:
    """What the guide produced."""

    adapter_image: str
    adapter_digest: str
    chat_url: str
    answer: dict[str, Any]
    seconds: float


def guide_manifests(folder: Path, stack: LocalStack) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two Workspaces of ``folder`` (``examples/local``), pointed at this stack's registry
    and dataset when they are not at the examples' ``localhost:5000`` and ``localhost:5001``.

    Raises:
        GuideError: a file is missing or is not one Workspace.
    """
    found = []
    for name in (GUIDE_TUNING, GUIDE_INFERENCE):
        path = folder / name
        try:
            text = path.read_text()
        except OSError as err:
            raise GuideError(
                f"{path}: {err.strerror}; run kaito up --guide from the repository's root, or "
                "give the folder of the guide's local examples with --guide-dir"
            ) from None
        registry = stack.registry.host if stack.registry else _EXAMPLE_REGISTRY
        text = text.replace(_EXAMPLE_REGISTRY, registry)
        text = text.replace(_EXAMPLE_FILES, stack.dataset_url.split("/datasets/")[0])
        doc = yaml.safe_load(text)
        if not isinstance(doc, dict) or doc.get("kind") != "Workspace":
            raise GuideError(f"{path} is not a Workspace")
        found.append(doc)
    return found[0], found[1]


def _docker_config(registry: LocalRegistry) -> dict[str, Any]:
    """What ``kubectl create secret docker-registry`` writes (the local registry takes any
    credentials)."""
    user, password = "kaito", "local"
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {registry.host: {"username": user, "password": password, "auth": auth}}}


async def _ensure_push_secret(cluster: Cluster, namespace: str, registry: LocalRegistry) -> None:
    config = json.dumps(_docker_config(registry)).encode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PUSH_SECRET, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
    }
    try:
        await cluster.client.create(secret)
    except StatusError as err:
        if err.code != 409:
            raise


async def _apply(cluster: Cluster, doc: dict[str, Any]) -> dict[str, Any]:
    applied = await cluster.client.apply_manifests([doc], field_manager="kaito-up-guide")
    return applied[0]


def _condition(ws: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (ws.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


async def _wait(
    cluster: Cluster, namespace: str, name: str, condition: str, within: float
) -> dict[str, Any]:
    """The Workspace once ``condition`` is True; GuideError when it fails or takes too long."""
    deadline = anyio.current_time() + within
    while True:
        ws = await cluster.client.get("kaito.sh/v1beta1", "Workspace", name, namespace)
        cond = _condition(ws, condition)
        if cond.get("status") == "True":
            return ws
        if (ws.get("status") or {}).get("state") == "Failed":
            raise GuideError(
                f"workspace/{name} failed: {cond.get('reason')}: {cond.get('message')}"
            )
        if anyio.current_time() > deadline:
            raise GuideError(
                f"workspace/{name} is not {condition} after {within:g}s: "
                f"{cond.get('reason', 'no status yet')}: {cond.get('message', '')} "
                f"(kubectl describe workspace {name})"
            )
        await anyio.sleep(_POLL)


def _repository_and_tag(image: str, registry: LocalRegistry) -> tuple[str, str]:
    rest = image.removeprefix(registry.host + "/")
    repository, _, tag = rest.rpartition(":")
    return (repository, tag) if repository else (rest, "latest")


async def _chat(url: str, prompt: str, within: float) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=within)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json={"prompt": prompt}) as resp,
    ):
        body = await resp.text()
        if resp.status != 200:
            raise GuideError(f"POST {url} answered {resp.status}: {body[:500]}")
    answer = json.loads(body)
    if not isinstance(answer, dict) or "Result" not in answer:
        raise GuideError(f"POST {url} answered {body[:500]!r}, not a /chat answer")
    return answer


async def run_guide(
    cluster: Cluster,
    stack: LocalStack,
    folder: Path,
    *,
    say: Callable[[str], None],
    within: float = 900.0,
    prompt: str = GUIDE_PROMPT,
) -> GuideResult:
    """Run the guide's steps (see the module's docstring); returns what it produced.

    Raises:
        GuideError: a step failed (the message names it, the reason and what to look at).
    """
    started = time.monotonic()
    registry = stack.registry
    if registry is None:
        raise GuideError(
            "the guide pushes its adapter to a registry and none runs: install Debian's "
            "docker-registry (apt-get install docker-registry) or give --registry HOST:PORT"
        )
    tuning, inference = await anyio.to_thread.run_sync(guide_manifests, folder, stack)
    namespace = (tuning.get("metadata") or {}).get("namespace") or "default"
    say(
        f"[1/5] kubectl create secret docker-registry {PUSH_SECRET} "
        f"--docker-server={registry.host} --docker-username=kaito --docker-password=local"
    )
    await _ensure_push_secret(cluster, namespace, registry)
    tuning_name = tuning["metadata"]["name"]
    say(f"[2/5] kubectl apply -f {folder / GUIDE_TUNING}   # then wait for WORKSPACESUCCEEDED")
    await _apply(cluster, tuning)
    await _wait(cluster, namespace, tuning_name, "WorkspaceSucceeded", within)
    image = tuning["tuning"]["output"]["image"]
    repository, tag = _repository_and_tag(image, registry)
    digest = await registry.manifest_digest(repository, tag)
    if digest is None:
        raise GuideError(f"workspace/{tuning_name} succeeded but {image} is not in the registry")
    say(f"[3/5] the adapter image is in the registry: {image}@{digest}")
    inference_name = inference["metadata"]["name"]
    say(f"[4/5] kubectl apply -f {folder / GUIDE_INFERENCE}   # then wait for WORKSPACEREADY")
    await _apply(cluster, inference)
    await _wait(cluster, namespace, inference_name, "WorkspaceSucceeded", within)
    url = chat_url(cluster, namespace, inference_name)
    if url is None:
        raise GuideError(
            f"service/{inference_name} has no reachable address (the cluster serves no Services: "
            "is the local kubelet on?)"
        )
    say(
        f'[5/5] curl -X POST {url} -H "Content-Type: application/json" '
        f'-d \'{{"prompt":"{prompt}"}}\''
    )
    answer = await _chat(url, prompt, within=120.0)
    return GuideResult(image, digest, url, answer, time.monotonic() - started)
