"""Credentials come from docker config files and mounted dockerconfigjson secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kaito_runtime.oci import Credentials, DockerConfigError, load_credentials


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_auth_field_and_scheme_prefixed_keys(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "config.json",
        {"auths": {"https://myacr.azurecr.io/v1/": {"auth": _auth("u", "p:with:colons")}}},
    )
    assert load_credentials(config, "myacr.azurecr.io") == Credentials("u", "p:with:colons")
    assert load_credentials(config, "other.io") is None


def test_username_password_fields_in_a_mounted_secret_directory(tmp_path: Path) -> None:
    _write(tmp_path / ".dockerconfigjson", {"auths": {"r.io": {"username": "a", "password": "b"}}})
    assert load_credentials(tmp_path, "r.io") == Credentials("a", "b")


def test_docker_hub_aliases_match(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "c.json", {"auths": {"https://index.docker.io/v1/": {"auth": _auth("x", "y")}}}
    )
    assert load_credentials(config, "docker.io") == Credentials("x", "y")


def test_none_means_anonymous() -> None:
    assert load_credentials(None, "r.io") is None


def test_repr_hides_the_password() -> None:
    assert "secret" not in repr(Credentials("user", "secret"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("not json", "not readable JSON", id="not-json"),
        pytest.param(json.dumps({"auths": {"r.io": {"auth": "!!!"}}}), "not base64", id="b64"),
        pytest.param(
            json.dumps({"auths": {"r.io": {"auth": base64.b64encode(b"nocolon").decode()}}}),
            "no 'user:password' pair",
            id="no-colon",
        ),
    ],
)
def test_malformed_configs_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(DockerConfigError, match=message):
        load_credentials(tmp_path / "config.json", "r.io")


def test_missing_file_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DockerConfigError, match="does not exist"):
        load_credentials(tmp_path / "nope.json", "r.io")
    with pytest.raises(DockerConfigError, match=r"neither config.json, \.dockerconfigjson nor"):
        load_credentials(tmp_path, "r.io")


def test_a_directory_of_projected_pull_secrets(tmp_path: Path) -> None:
    """KAITO projects every pull secret of an adapter as ``<secret>.json`` into one directory
    (upstream's ``config.d/<name>-inference-adapter``): the one that knows the registry wins."""
    _write(tmp_path / "first.json", {"auths": {"a.io": {"auth": _auth("a", "1")}}})
    _write(tmp_path / "second.json", {"auths": {"b.io": {"auth": _auth("b", "2")}}})
    assert load_credentials(tmp_path, "b.io") == Credentials("b", "2")
    assert load_credentials(tmp_path, "a.io") == Credentials("a", "1")
    assert load_credentials(tmp_path, "c.io") is None
