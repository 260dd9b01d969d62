"""The Bearer token flow (ACR, GHCR, Docker Hub) against a real registry with token auth."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from kaito_runtime.oci import AuthenticationError, pull_adapter, push_adapter
from tests.runtime.oci.token_service import TokenService, run_token_service
from tests.support.registry import Registry, run_registry

pytestmark = pytest.mark.registry

USER, PASSWORD = "acr-user", "acr-pass"


@attrs.frozen
class TokenRegistry:
    registry: Registry
    tokens: TokenService


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    root = tmp_path_factory.mktemp("token-registry")
    with (
        run_token_service(root / "tokens", {USER: PASSWORD}) as tokens,
        run_registry(root / "registry", auth_config=tokens.registry_auth_config()) as registry,
    ):
        yield TokenRegistry(registry=registry, tokens=tokens)


def _config(path: Path, host: str, password: str) -> Path:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


def test_push_and_pull_with_bearer_tokens(
    token_registry: TokenRegistry, lora_adapter: Path, tmp_path: Path
) -> None:
    host = token_registry.registry.host
    config = _config(tmp_path / "config.json", host, PASSWORD)
    image = f"{host}/adapters/bearer:1"

    digest = push_adapter(lora_adapter, image, docker_config=config, model_name="phi-4")
    pulled = pull_adapter(image, tmp_path / "dest", docker_config=config)

    assert pulled.digest == digest
    assert pulled.model_name == "phi-4"
    data = (tmp_path / "dest" / "adapter_model.safetensors").read_bytes()
    expected = (lora_adapter / "adapter_model.safetensors").read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(expected).digest()
    assert "repository:adapters/bearer:pull,push" in token_registry.tokens.granted
    assert "repository:adapters/bearer:pull" in token_registry.tokens.granted


def test_wrong_password_is_refused_by_the_token_service(
    token_registry: TokenRegistry, lora_adapter: Path, tmp_path: Path
) -> None:
    host = token_registry.registry.host
    config = _config(tmp_path / "config.json", host, "wrong")
    with pytest.raises(AuthenticationError, match="token service refused the credentials") as err:
        push_adapter(lora_adapter, f"{host}/adapters/bearer:2", docker_config=config)
    assert err.value.status == 401


def test_anonymous_pull_gets_no_access(token_registry: TokenRegistry, tmp_path: Path) -> None:
    host = token_registry.registry.host
    with pytest.raises(AuthenticationError, match="pass a docker config with credentials"):
        pull_adapter(f"{host}/adapters/bearer:1", tmp_path / "dest")
